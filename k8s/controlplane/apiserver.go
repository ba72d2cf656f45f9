package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/cache"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"

	"github.com/hepto-net/hepto/k8s/pki"
)

// clientStopDelay bounds how long a stopping apiserver waits for the
// controller manager and the scheduler to stop first.
const clientStopDelay = 3 * time.Second

// ServiceAccountIssuer is the issuer of service-account tokens.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// APIServerConfig is what the apiserver's flags are made of.
type APIServerConfig struct {
	PKI          *pki.PKI
	Advertise    netip.Addr
	Port         int
	ServiceCIDRs []netip.Prefix
	EtcdURL      string
	// Certs: "serving", "kubelet", "front-proxy", "etcd" → (certificate,
	// key) paths; CertDir the apiserver's own.
	Certs   map[string][2]string
	CertDir string
	// DataDir is where its configuration files and audit log go
	// (hardeningArgs).
	DataDir string
	Timings Timings
}

// apiServerArgs are this node's apiserver's flags.
func (c *ControlPlane) apiServerArgs(certs map[string][2]string) ([]string, error) {
	return APIServerArgs(APIServerConfig{
		PKI: c.pki, Advertise: c.opts.AdvertiseAddresses[0], Port: c.opts.APIServerPort,
		ServiceCIDRs: c.opts.ServiceCIDRs, EtcdURL: c.etcdURL(), Certs: certs, CertDir: c.layout.Certs,
		DataDir: c.opts.DataDir, Timings: c.timings(),
	})
}

// APIServerArgs are kube-apiserver's flags: the same names and meanings
// as the stand-alone binary's, so that its documentation applies, and
// the same for upstream's binary in make bench-k8s.
func APIServerArgs(cfg APIServerConfig) ([]string, error) {
	var svc []string
	for _, p := range cfg.ServiceCIDRs {
		svc = append(svc, p.String())
	}
	certs, p := cfg.Certs, cfg.PKI
	args := []string{
		"--advertise-address=" + cfg.Advertise.String(),
		"--secure-port=" + strconv.Itoa(cfg.Port),
		"--tls-cert-file=" + certs["serving"][0],
		"--tls-private-key-file=" + certs["serving"][1],
		"--cert-dir=" + cfg.CertDir,
		"--client-ca-file=" + p.Path("ca.crt"),
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--profiling=false",
		"--service-cluster-ip-range=" + strings.Join(svc, ","),
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-account-key-file=" + p.Path(pki.SAPubFile),
		"--service-account-signing-key-file=" + p.Path(pki.SAKeyFile),
		"--etcd-servers=" + cfg.EtcdURL,
		"--etcd-cafile=" + p.Path("etcd-ca.crt"),
		"--etcd-certfile=" + certs["etcd"][0],
		"--etcd-keyfile=" + certs["etcd"][1],
		// Kubelets are reached on their overlay addresses, which their
		// serving certificates (from the cluster CA) name.
		"--kubelet-client-certificate=" + certs["kubelet"][0],
		"--kubelet-client-key=" + certs["kubelet"][1],
		"--kubelet-certificate-authority=" + p.Path("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--proxy-client-cert-file=" + certs["front-proxy"][0],
		"--proxy-client-key-file=" + certs["front-proxy"][1],
		"--requestheader-client-ca-file=" + p.Path("front-proxy-ca.crt"),
		"--requestheader-allowed-names=" + pki.FrontProxyUser,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		// A home that goes dark (power cut, uplink down): its pods are
		// evicted, hence run elsewhere, after 2 minutes instead of 5;
		// with the controller-manager's 40 s, they run again within 3.
		"--default-not-ready-toleration-seconds=" + strconv.Itoa(int(PodEvictionAfter.Seconds())),
		"--default-unreachable-toleration-seconds=" + strconv.Itoa(int(PodEvictionAfter.Seconds())),
	}
	// The keys on disk, not those read at start: a rotation
	// (SetSecretsKeys) changes them while hepto runs.
	keys, err := pki.ReadSecretsKeys(string(p.Dir))
	if err != nil {
		return nil, err
	}
	hard, err := hardeningArgs(cfg.DataDir, keys)
	if err != nil {
		return nil, err
	}
	args = append(args, hard...)
	args = append(args, featureGateArgs(cfg.Timings)...)
	args = append(args, "--etcd-count-metric-poll-period="+cfg.Timings.ObjectCountPoll.String())
	// The endpoint reconciler refuses loopback addresses: a control plane
	// advertising one (tests) keeps the kubernetes service's endpoints alone.
	if cfg.Advertise.IsLoopback() {
		args = append(args, "--endpoint-reconciler-type=none")
	}
	return args, nil
}

// apiServerCerts issues the apiserver's certificates, written under
// layout.Certs: name → (certificate, key) paths.
func (c *ControlPlane) apiServerCerts() (map[string][2]string, error) {
	ips := slices.Concat(c.opts.AdvertiseAddresses, c.opts.BindAddresses)
	issue := map[string]func() (*pki.KeyPair, error){
		"serving":     func() (*pki.KeyPair, error) { return c.pki.APIServerServing(ips, c.opts.ServiceCIDRs) },
		"kubelet":     c.pki.APIServerKubeletClient,
		"front-proxy": c.pki.FrontProxyClient,
		"etcd":        func() (*pki.KeyPair, error) { return c.pki.EtcdClient(pki.EtcdAPIServerUser) },
	}
	out := map[string][2]string{}
	for name, f := range issue {
		kp, err := f()
		if err != nil {
			return nil, err
		}
		crt, key, err := kp.Write(c.layout.Certs, "apiserver-"+name)
		if err != nil {
			return nil, err
		}
		out[name] = [2]string{crt, key}
	}
	return out, nil
}

func (c *ControlPlane) runAPIServer(ctx context.Context) error {
	if err := c.etcdReady.Wait(ctx); err != nil {
		return nil // stopped while waiting
	}
	certs, err := c.apiServerCerts()
	if err != nil {
		return err
	}
	c.setAPIServerTimings()
	s := apiserveroptions.NewServerRunOptions()
	args, err := c.apiServerArgs(certs)
	if err != nil {
		return err
	}
	if err := parseFlags("kube-apiserver", s.Flags(), args); err != nil {
		return err
	}
	// Loopback first: the apiserver's own clients use the first address.
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	if ipv6LoopbackUsable() {
		addrs = append(addrs, netip.IPv6Loopback())
	}
	for _, a := range c.opts.BindAddresses {
		if !a.IsLoopback() && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	ln, err := listenAll(addrs, c.opts.APIServerPort)
	if err != nil {
		return err
	}
	defer ln.Close()
	s.SecureServing.Listener = ln
	// The name of the apiserver's informers is reserved per process; take
	// it here to release it when this run ends, so that a restart can.
	informerName, err := cache.NewInformerName("kube-apiserver")
	if err != nil {
		return err
	}
	defer informerName.Release()
	s.InformerName = informerName

	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("feature gates: %w", err)
	}
	completed, err := s.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return fmt.Errorf("options: %w", utilerrors.NewAggregate(errs))
	}

	// The apiserver stops once its clients have (clientStopDelay at most).
	runCtx, cancel := context.WithCancel(context.WithoutCancel(componentContext(ctx, compAPIServer)))
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-ln.Failed():
			cancel() // Run returns, and the listener's error with it
			return
		case <-runCtx.Done():
			return
		}
		wait, stop := context.WithTimeout(runCtx, clientStopDelay)
		defer stop()
		c.cmStopped.Wait(wait)
		c.schedStopped.Wait(wait)
		cancel()
	}()
	c.apiStopped.Close()
	defer c.apiStopped.Open()
	readyz, err := c.readyzProbe()
	if err != nil {
		return err
	}
	// Watch until the run ends or the stop begins: a draining apiserver is
	// not ready, and is not failing either.
	watchCtx, stopWatch := context.WithCancel(runCtx)
	defer context.AfterFunc(ctx, stopWatch)()
	go c.watch(watchCtx, compAPIServer, readyz, c.apiReady.Open)
	defer c.apiReady.Close()
	err = apiserver.Run(runCtx, completed)
	switch {
	case ln.Err() != nil:
		return fmt.Errorf("listener: %w", ln.Err())
	case ctx.Err() != nil:
		return nil
	case err == nil:
		return errors.New("stopped unexpectedly")
	}
	return err
}

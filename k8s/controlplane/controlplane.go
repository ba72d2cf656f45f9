package controlplane

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/client-go/rest"

	"github.com/hepto-net/hepto/k8s/component"
	"github.com/hepto-net/hepto/k8s/pki"
	"github.com/hepto-net/hepto/supervisor"
)

// Component names, as services and in States.
const (
	compEtcd              = "etcd"
	compAPIServer         = "kube-apiserver"
	compControllerManager = "kube-controller-manager"
	compScheduler         = "kube-scheduler"
)

// Components names the control plane's components, in start order.
var Components = []string{compEtcd, compAPIServer, compControllerManager, compScheduler}

// Layout is where the control plane writes, all under Options.DataDir.
type Layout struct {
	PKI         string // the CAs and service-account key (Options.PKIDir)
	Etcd        string // DATA/etcd: etcd's data (0700)
	Certs       string // DATA/certs: leaf certificates, issued again at each start
	Kubeconfigs string // DATA/kubeconfig: admin.conf, controller-manager.conf, scheduler.conf (0600)
}

// ControlPlane is one node's control plane. Make it with New, hand its
// Services to a supervisor, and read its state with States.
type ControlPlane struct {
	opts   Options
	layout Layout
	// pki and admin are set once, before prepared opens (at New, or when
	// a joining node has the cluster's CAs); read them after it.
	pki      *pki.PKI
	admin    *rest.Config
	pkiReady atomic.Pointer[pki.PKI] // pki, for readers that do not wait
	prepared *component.Gate
	// initialCluster is etcd's first membership, for a data directory
	// still empty ("": a new cluster of this node alone).
	initialCluster string

	etcd     atomic.Pointer[embed.Etcd] // while etcd runs
	memberMu sync.Mutex                 // one etcd membership change at a time

	states    component.States
	etcdReady *component.Gate
	apiReady  *component.Gate
	// apiStopped is open while no apiserver runs: etcd outlives the
	// apiserver when both stop, or the apiserver's requests in flight
	// would wait on a vanished etcd until they time out.
	apiStopped *component.Gate
	// cmStopped and schedStopped are open while that component does not
	// run: the apiserver outlives its clients when all stop, or their
	// retries against a vanished apiserver hold up their stop.
	cmStopped    *component.Gate
	schedStopped *component.Gate
}

// New prepares a control plane: it makes the directories, loads (or makes)
// the cluster's CAs, and writes the admin kubeconfig. Nothing runs yet.
func New(opts Options) (*ControlPlane, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &ControlPlane{
		opts: opts,
		layout: Layout{
			PKI:         opts.PKIDir,
			Etcd:        etcdDir(opts.DataDir),
			Certs:       filepath.Join(opts.DataDir, "certs"),
			Kubeconfigs: filepath.Join(opts.DataDir, "kubeconfig"),
		},
		prepared:     component.NewGate(),
		etcdReady:    component.NewGate(),
		apiReady:     component.NewGate(),
		apiStopped:   component.NewGate(),
		cmStopped:    component.NewGate(),
		schedStopped: component.NewGate(),
	}
	c.apiStopped.Open()
	c.cmStopped.Open()
	c.schedStopped.Open()
	for _, d := range []string{opts.DataDir, c.layout.Etcd, c.layout.Certs, c.layout.Kubeconfigs} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("control plane: %w", err)
		}
	}
	// A joining control-plane node has no CAs until another gives them
	// (runJoin); the founding one makes them.
	if opts.Join == nil || pki.Exists(opts.PKIDir) {
		if err := c.prepare(); err != nil {
			return nil, err
		}
	}
	// Done already by k8s.New for a node; here for a control plane alone.
	component.RouteKlog(opts.Logger, opts.ComponentLogLevel)
	for _, name := range Components {
		c.states.Set(name, component.Starting)
	}
	return c, nil
}

// prepare loads (or makes) the cluster's CAs and writes the admin
// kubeconfig, then lets the components start.
func (c *ControlPlane) prepare() error {
	p, err := pki.LoadOrCreate(c.opts.PKIDir)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	if c.opts.LeafValidity > 0 {
		p.SetLeafValidity(c.opts.LeafValidity)
	}
	c.pki = p
	certFile, keyFile, err := c.adminCert()
	if err != nil {
		return err
	}
	if _, err := writeKubeconfigFiles(c.layout.Kubeconfigs, "admin.conf", c.LocalURL(), c.pki.Path("ca.crt"), certFile, keyFile, pki.AdminUser); err != nil {
		return err
	}
	// Files, not data: the client reloads them when they are renewed.
	c.admin = &rest.Config{Host: c.LocalURL(), TLSClientConfig: rest.TLSClientConfig{CAData: c.pki.Cluster.CertPEM, CertFile: certFile, KeyFile: keyFile}}
	c.pkiReady.Store(p)
	c.prepared.Open()
	return nil
}

// LocalURL is the apiserver's URL on loopback.
func (c *ControlPlane) LocalURL() string {
	return "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.opts.APIServerPort))
}

// Layout says where the control plane writes.
func (c *ControlPlane) Layout() Layout { return c.layout }

// PKI is the cluster's CAs, for issuing node certificates; nil until a
// joining node has them.
func (c *ControlPlane) PKI() *pki.PKI { return c.pkiReady.Load() }

// AdminConfig is a client configuration with every right, on loopback;
// nil until the node has the cluster's CAs.
func (c *ControlPlane) AdminConfig() *rest.Config {
	if c.pkiReady.Load() == nil {
		return nil
	}
	return rest.CopyConfig(c.admin)
}

// AdminKubeconfig is the path of the admin kubeconfig (server on loopback).
func (c *ControlPlane) AdminKubeconfig() string {
	return filepath.Join(c.layout.Kubeconfigs, "admin.conf")
}

// States is each component's state: "starting", "running", "stopped" or
// "failed: REASON".
func (c *ControlPlane) States() map[string]string { return c.states.Snapshot() }

// Services are the control plane's components as supervisor services, in
// start order. None has a Start step: each Run waits for what it needs
// (the apiserver for etcd, the others for the apiserver), so that a
// control plane that cannot start never stops the daemon.
func (c *ControlPlane) Services() []supervisor.Service {
	runs := map[string]func(context.Context) error{
		compEtcd:              c.runEtcd,
		compAPIServer:         c.runAPIServer,
		compControllerManager: c.runControllerManager,
		compScheduler:         c.runScheduler,
	}
	out := []supervisor.Service{supervisor.Func("control-plane-certs", c.renewCerts)}
	if c.PKI() == nil {
		out = append([]supervisor.Service{supervisor.Func("control-plane-join", c.runJoin)}, out...)
	}
	for _, name := range Components {
		run := runs[name]
		out = append(out, supervisor.Func(name, func(ctx context.Context) error {
			c.states.Set(name, component.Starting)
			err := run(ctx)
			c.states.Finish(ctx, name, err)
			return err // the supervisor logs it
		}))
	}
	return out
}

// componentCredentials issues a component's client certificate (in a
// kubeconfig) and its serving certificate for loopback.
func (c *ControlPlane) componentCredentials(name string, client func() (*pki.KeyPair, error), user string) (kubeconfig, cert, key string, err error) {
	kp, err := client()
	if err != nil {
		return "", "", "", err
	}
	clientCert, clientKey, err := kp.Write(c.layout.Certs, name+"-client")
	if err != nil {
		return "", "", "", err
	}
	// The kubeconfig names the files: the component reloads them when
	// they are renewed (renewCerts).
	kubeconfig, err = writeKubeconfigFiles(c.layout.Kubeconfigs, name+".conf", c.LocalURL(), c.pki.Path("ca.crt"), clientCert, clientKey, user)
	if err != nil {
		return "", "", "", err
	}
	serving, err := c.pki.Cluster.Issue(pki.Request{CommonName: "kube-" + name, DNSNames: []string{"localhost"}, IPs: loopbackAddrs, Server: true})
	if err != nil {
		return "", "", "", err
	}
	cert, key, err = serving.Write(c.layout.Certs, name+"-serving")
	return kubeconfig, cert, key, err
}

// etcdDir is etcd's data directory under the control plane's.
func etcdDir(dataDir string) string { return filepath.Join(dataDir, "etcd") }

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hepto-net/hepto/k8s/containerd"
	"github.com/hepto-net/hepto/k8s/controlplane"
	"github.com/hepto-net/hepto/k8s/images"
	"github.com/hepto-net/hepto/k8s/kubelet"
	"github.com/hepto-net/hepto/k8s/pki"
	proxyflags "github.com/hepto-net/hepto/k8s/proxy/flags"
	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/lab/cluster"
	"github.com/hepto-net/hepto/state"
)

// The upstream run: hepto runs the fabric alone (--kubernetes=false) and
// the components run as upstream ships them, one process each, started
// here in the node's namespace with the flags and files hepto gives the
// embedded ones (k8s/controlplane, k8s/kubelet, k8s/containerd).

// refNode is one node's upstream components.
type refNode struct {
	node  *cluster.Node
	dir   string // DIR/ref/NAME
	ips   []netip.Addr
	procs map[string]*lab.Proc // component → process
	order []string             // start order
	sock  string               // containerd's socket
}

// refCluster is the upstream run's cluster: the binaries, the CAs.
type refCluster struct {
	ctx     context.Context
	bin     string // bin/k8s-ref
	dir     string
	pki     *pki.PKI
	svc     []netip.Prefix
	pods    []netip.Prefix // the cluster's pod ranges
	overlay []netip.Prefix // the overlay's: where node ports answer
	cpURL   string         // the apiserver on the control-plane node's overlay IPv4
	images  []string
	nodes   []*refNode
}

// add prepares a node's components.
func (r *refCluster) add(n *cluster.Node, ips []netip.Addr) *refNode {
	rn := &refNode{node: n, dir: filepath.Join(r.dir, n.Name), ips: ips, procs: map[string]*lab.Proc{}}
	r.nodes = append(r.nodes, rn)
	return rn
}

func (r *refCluster) start(n *refNode, comp string, args ...string) error {
	bin := filepath.Join(r.bin, comp)
	if comp == "containerd" {
		var err error
		if bin, err = containerd.Binary("containerd"); err != nil {
			return err
		}
	}
	// The shim is looked up on PATH: containerd's own directory first, as
	// hepto runs it.
	o := lab.StartOptions{HostMounts: true, Env: []string{"PATH=" + filepath.Dir(bin) + ":" + os.Getenv("PATH")}}
	p, err := n.node.Host.StartWith(r.ctx, filepath.Join(n.dir, "logs", comp+".log"), o, bin, args...)
	if err != nil {
		return err
	}
	n.procs[comp] = p
	n.order = append(n.order, comp)
	return nil
}

// stop stops every component of every node, the last started first.
func (r *refCluster) stop() {
	for i := len(r.nodes) - 1; i >= 0; i-- {
		n := r.nodes[i]
		for j := len(n.order) - 1; j >= 0; j-- {
			n.procs[n.order[j]].Stop(syscall.SIGTERM, 10*time.Second)
		}
	}
}

// overlayIPs waits for the node's overlay addresses.
func overlayIPs(n *cluster.Node) ([]netip.Addr, error) {
	var ips []netip.Addr
	err := poll(30*time.Second, 100*time.Millisecond, func() error {
		st, _, err := n.Status()
		if err != nil {
			return err
		}
		ips = nil
		for _, s := range st.OverlayIPs {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return err
			}
			ips = append(ips, a)
		}
		if len(ips) < 2 {
			return fmt.Errorf("%s: overlay addresses %v", n.Name, st.OverlayIPs)
		}
		return nil
	})
	return ips, err
}

// serviceCIDRs are hepto's default Service ranges (the lab's clusters
// keep the defaults): 10.96.0.0/16 and <ULA /48>:300::/112, from a node's
// overlay IPv6.
func serviceCIDRs(v6 netip.Addr) []netip.Prefix {
	b := v6.As16()
	b[6], b[7] = 0x03, 0x00
	clear(b[8:])
	return []netip.Prefix{netip.MustParsePrefix("10.96.0.0/16"), netip.PrefixFrom(netip.AddrFrom16(b), 112)}
}

// podsAndOverlay are the cluster's pod ranges and overlay prefixes under
// its ULA, as membership.DefaultNetworks plans them (the lab's clusters
// keep the defaults), from a node's overlay IPv6.
func podsAndOverlay(v6 netip.Addr) (pods, overlay []netip.Prefix) {
	b := v6.As16()
	clear(b[8:])
	overlay = []netip.Prefix{netip.MustParsePrefix("10.77.0.0/16"), netip.PrefixFrom(netip.AddrFrom16(b), 64)}
	b[6], b[7] = 0x01, 0x00
	pods = []netip.Prefix{netip.MustParsePrefix("10.78.0.0/16"), netip.PrefixFrom(netip.AddrFrom16(b), 56)}
	return pods, overlay
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// cgroupRoot is the node's cgroup parent, as k8s.CgroupRoot names it, so
// that cluster.RemovePods finds what the kubelet leaves.
func cgroupRoot(n *cluster.Node) string {
	return "/hepto/" + n.Name + "-" + state.Dir(n.State).ID()
}

// makeCgroupRoot makes the cgroup parent in every hierarchy: the kubelet
// wants it to exist (hepto's kubelet makes it itself).
func makeCgroupRoot(root string) error {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		// cgroup v2: each level enables its controllers for the next.
		dir := "/sys/fs/cgroup"
		for _, part := range strings.Split(strings.Trim(root, "/"), "/") {
			if ctl, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers")); err == nil {
				for _, c := range strings.Fields(string(ctl)) {
					os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0o644)
				}
			}
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
				return err
			}
		}
		return nil
	}
	hiers, _ := filepath.Glob("/sys/fs/cgroup/*/cgroup.procs")
	for _, h := range hiers {
		dir := filepath.Dir(h)
		for _, part := range strings.Split(strings.Trim(root, "/"), "/") {
			parent := dir
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil {
				if os.IsExist(err) {
					continue
				}
				return err
			}
			// A new cpuset has no CPUs nor memory nodes: its parent's.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				if b, err := os.ReadFile(filepath.Join(parent, f)); err == nil {
					os.WriteFile(filepath.Join(dir, f), b, 0o644)
				}
			}
		}
	}
	return nil
}

// writeKubeconfig writes a kubeconfig (JSON, which is YAML) whose user
// authenticates with a client certificate.
func writeKubeconfig(path, server, ca, cert, key string) error {
	kc := map[string]any{
		"apiVersion": "v1", "kind": "Config", "current-context": "hepto",
		"clusters": []any{map[string]any{"name": "hepto", "cluster": map[string]any{"server": server, "certificate-authority": ca}}},
		"users":    []any{map[string]any{"name": "user", "user": map[string]any{"client-certificate": cert, "client-key": key}}},
		"contexts": []any{map[string]any{"name": "hepto", "context": map[string]any{"cluster": "hepto", "user": "user"}}},
	}
	b, err := json.MarshalIndent(kc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// issue issues a certificate into the node's certs directory.
func issue(ca *pki.CA, req pki.Request, dir, name string) (cert, key string, err error) {
	kp, err := ca.Issue(req)
	if err != nil {
		return "", "", err
	}
	return kp.Write(dir, name)
}

var loopbacks = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}

// startControlPlane starts etcd, kube-apiserver, kube-controller-manager
// and kube-scheduler on n with hepto's flags (k8s/controlplane).
// The controller manager and the scheduler start once the apiserver is
// ready, as hepto starts them: earlier, before its RBAC bootstrap, they
// exit (a kubelet restarts static pods; nothing would here).
func (r *refCluster) startControlPlane(n *refNode, api *kubeClient) error {
	certs := filepath.Join(n.dir, "certs")
	ca := r.pki.Path("ca.crt")
	etcdCert, etcdKey, err := issue(r.pki.Etcd, pki.Request{CommonName: n.node.Name, DNSNames: []string{"localhost"}, IPs: loopbacks, Server: true, Client: true}, certs, "etcd-server")
	if err != nil {
		return err
	}
	const etcdURL, peerURL = "https://127.0.0.1:2379", "https://127.0.0.1:2380"
	if err := r.start(n, "etcd",
		"--name="+n.node.Name, "--data-dir="+filepath.Join(n.dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster="+n.node.Name+"="+peerURL,
		"--cert-file="+etcdCert, "--key-file="+etcdKey, "--trusted-ca-file="+r.pki.Path("etcd-ca.crt"), "--client-cert-auth",
		"--peer-cert-file="+etcdCert, "--peer-key-file="+etcdKey, "--peer-trusted-ca-file="+r.pki.Path("etcd-ca.crt"), "--peer-client-cert-auth",
		"--enable-grpc-gateway=false", "--log-level=warn"); err != nil {
		return err
	}

	serving, err := r.pki.APIServerServing(n.ips, r.svc)
	if err != nil {
		return err
	}
	servCert, servKey, err := serving.Write(certs, "apiserver-serving")
	if err != nil {
		return err
	}
	kc, err := r.pki.APIServerKubeletClient()
	if err != nil {
		return err
	}
	kcCert, kcKey, err := kc.Write(certs, "apiserver-kubelet")
	if err != nil {
		return err
	}
	fp, err := r.pki.FrontProxyClient()
	if err != nil {
		return err
	}
	fpCert, fpKey, err := fp.Write(certs, "apiserver-front-proxy")
	if err != nil {
		return err
	}
	ec, err := r.pki.EtcdClient(pki.EtcdAPIServerUser)
	if err != nil {
		return err
	}
	ecCert, ecKey, err := ec.Write(certs, "apiserver-etcd")
	if err != nil {
		return err
	}
	// hepto's apiserver flags (k8s/controlplane), for these files.
	args, err := controlplane.APIServerArgs(controlplane.APIServerConfig{
		PKI: r.pki, Advertise: n.ips[0], Port: 6443, ServiceCIDRs: r.svc, EtcdURL: etcdURL,
		Certs: map[string][2]string{
			"serving": {servCert, servKey}, "kubelet": {kcCert, kcKey},
			"front-proxy": {fpCert, fpKey}, "etcd": {ecCert, ecKey},
		},
		CertDir: certs, DataDir: n.dir, Timings: controlplane.HeptoTimings,
	})
	if err != nil {
		return err
	}
	if err := r.start(n, "kube-apiserver", args...); err != nil {
		return err
	}

	if err := cluster.Eventually(2*time.Minute, func() error {
		if err := n.exited(); err != nil {
			return cluster.Permanent(err)
		}
		return api.do(r.ctx, "GET", "/readyz", nil, nil)
	}); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}

	// The controller manager and the scheduler: a kubeconfig with their
	// client certificate, a serving certificate for loopback, and hepto's
	// flags (k8s/controlplane).
	creds := func(name, user string) (kubeconfig, cert, key string, err error) {
		cc, ck, err := issue(r.pki.Cluster, pki.Request{CommonName: user, Client: true}, certs, name+"-client")
		if err != nil {
			return "", "", "", err
		}
		kubeconfig = filepath.Join(n.dir, name+".conf")
		if err := writeKubeconfig(kubeconfig, "https://127.0.0.1:6443", ca, cc, ck); err != nil {
			return "", "", "", err
		}
		cert, key, err = issue(r.pki.Cluster, pki.Request{CommonName: "kube-" + name, DNSNames: []string{"localhost"}, IPs: loopbacks, Server: true}, certs, name+"-serving")
		return kubeconfig, cert, key, err
	}
	cmKC, cmCert, cmKey, err := creds("controller-manager", pki.ControllerManagerUser)
	if err != nil {
		return err
	}
	if err := r.start(n, "kube-controller-manager", controlplane.ControllerManagerArgs(r.pki, cmKC, cmCert, cmKey, 10257, controlplane.HeptoTimings)...); err != nil {
		return err
	}
	sk, sc, sck, err := creds("scheduler", pki.SchedulerUser)
	if err != nil {
		return err
	}
	return r.start(n, "kube-scheduler", controlplane.SchedulerArgs(sk, sc, sck, 10259, controlplane.HeptoTimings)...)
}

// startNode starts containerd with hepto's configuration, imports the
// pause image, and starts the kubelet and kube-proxy with hepto's
// configuration (k8s/kubelet, k8s/proxy).
func (r *refCluster) startNode(n *refNode) error {
	cni, err := containerd.Binary("hepto-cni")
	if err != nil {
		return err
	}
	ctrd, err := containerd.New(containerd.Options{
		Dir:          filepath.Join(n.dir, "containerd"),
		CNIConfDir:   n.node.CNI,
		CNIBinDirs:   []string{filepath.Dir(cni)},
		SandboxImage: images.PauseName,
	})
	if err != nil {
		return err
	}
	conf, err := ctrd.WriteConfig()
	if err != nil {
		return err
	}
	n.sock = ctrd.Socket()
	if err := r.start(n, "containerd", "--config", conf); err != nil {
		return err
	}
	// Polled as often as hepto polls its containerd's CRI.
	if err := poll(time.Minute, 100*time.Millisecond, func() error { return ctr(r.ctx, n.sock, "version") }); err != nil {
		return err
	}
	if err := ctr(r.ctx, n.sock, "images", "import", "--snapshotter", "overlayfs", r.images[0]); err != nil {
		return err
	}

	// Certificates: hepto issues them over its control protocol; here
	// from the CA directly, the same requests.
	certs := filepath.Join(n.dir, "node")
	creq, err := pki.KubeletClient(n.node.Name)
	if err != nil {
		return err
	}
	cc, ck, err := issue(r.pki.Cluster, creq, certs, "kubelet-client")
	if err != nil {
		return err
	}
	sreq, err := pki.KubeletServing(n.node.Name, n.ips)
	if err != nil {
		return err
	}
	sc, sk, err := issue(r.pki.Cluster, sreq, certs, "kubelet-serving")
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(certs, "kubelet.conf")
	if err := writeKubeconfig(kubeconfig, r.cpURL, r.pki.Path("ca.crt"), cc, ck); err != nil {
		return err
	}

	root := cgroupRoot(n.node)
	if err := makeCgroupRoot(root); err != nil {
		return fmt.Errorf("cgroup %s: %w", root, err)
	}
	kubeletDir := filepath.Join(n.dir, "kubelet")
	for _, d := range []string{kubeletDir, filepath.Join(n.dir, "pod-logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	// hepto's kubelet configuration, as a file and flags (k8s/kubelet).
	config, flags, err := kubelet.Standalone(kubelet.Options{
		Dir: kubeletDir, PodLogsDir: filepath.Join(n.dir, "pod-logs"), NodeName: n.node.Name, NodeIPs: n.ips,
		Kubeconfig: kubeconfig, ClientCA: r.pki.Path("ca.crt"), CertFile: sc, KeyFile: sk,
		Runtime: n.sock, CgroupRoot: root, ClusterDNS: n.ips[:1], NodeLease: controlplane.NodeLease,
	})
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(n.dir, "kubelet-config.yaml")
	if err := os.WriteFile(cfgPath, config, 0o644); err != nil {
		return err
	}
	if err := r.start(n, "kubelet", append([]string{"--config=" + cfgPath}, flags...)...); err != nil {
		return err
	}
	// kube-proxy with hepto's flags (k8s/proxy), its own certificate.
	pc, pk, err := issue(r.pki.Cluster, pki.KubeProxyClient(), certs, "kube-proxy-client")
	if err != nil {
		return err
	}
	proxyConf := filepath.Join(certs, "kube-proxy.conf")
	if err := writeKubeconfig(proxyConf, r.cpURL, r.pki.Path("ca.crt"), pc, pk); err != nil {
		return err
	}
	mode := "iptables"
	if _, err := exec.LookPath("nft"); err == nil {
		mode = "nftables"
	}
	if err := r.start(n, "kube-proxy", proxyflags.Args(proxyConf, n.node.Name, n.ips[0].String(), mode,
		joinPrefixes(r.pods), joinPrefixes(r.overlay))...); err != nil {
		return err
	}
	for _, img := range r.images[1:] {
		if err := ctr(r.ctx, n.sock, "images", "import", "--snapshotter", "overlayfs", img); err != nil {
			return err
		}
	}
	return nil
}

// poll calls f every interval until it succeeds or timeout passes.
func poll(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// ctr runs containerd's ctr against a socket, in Kubernetes' namespace.
func ctr(ctx context.Context, sock string, args ...string) error {
	bin, err := containerd.Binary("ctr")
	if err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, bin, append([]string{"--address", sock, "--namespace", containerd.Namespace}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// exited says which component has exited, with the end of its log.
func (n *refNode) exited() error {
	for _, comp := range n.order {
		select {
		case <-n.procs[comp].Done():
			b, _ := os.ReadFile(filepath.Join(n.dir, "logs", comp+".log"))
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			return errors.New(n.node.Name + ": " + comp + " exited: " + strings.Join(lines[max(0, len(lines)-5):], "\n"))
		default:
		}
	}
	return nil
}

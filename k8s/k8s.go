// Package k8s runs Kubernetes on a hepto node, on top of the fabric: the
// control plane on control-plane nodes (k8s/controlplane), containerd as a
// child process (k8s/containerd) and the kubelet (k8s/kubelet) on every
// Kubernetes node, with certificates issued inside WireGuard
// (k8s/nodecert). Everything it writes lives under STATE/kubernetes. The
// daemon starts its services like any other; when Kubernetes cannot start,
// the fabric goes on without it.
package k8s

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/dns/kubewatch"
	"github.com/hepto-net/hepto/k8s/component"
	"github.com/hepto-net/hepto/k8s/containerd"
	"github.com/hepto-net/hepto/k8s/controlplane"
	"github.com/hepto-net/hepto/k8s/images"
	"github.com/hepto-net/hepto/k8s/imageshare"
	"github.com/hepto-net/hepto/k8s/kubelet"
	"github.com/hepto-net/hepto/k8s/nodecert"
	"github.com/hepto-net/hepto/k8s/proxy"
	"github.com/hepto-net/hepto/k8s/publish"
	"github.com/hepto-net/hepto/k8s/publish/ports"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/state"
	"github.com/hepto-net/hepto/supervisor"
)

// Roles a node has in Kubernetes, as status shows them.
const (
	RoleControlPlane = "control-plane"
	RoleWorker       = "worker"
	RoleNone         = "none"
)

// Component names beside the control plane's.
const (
	compContainerd = "containerd"
	compKubelet    = "kubelet"
	compProxy      = "kube-proxy"
	compNetpol     = "network-policy"
)

// Dir is where Kubernetes keeps its files, under hepto's state directory.
const Dir = state.KubernetesDir

// Options configure a node's Kubernetes.
type Options struct {
	StateDir     string       // hepto's state directory
	VolumesDir   string       // local persistent volumes ("": STATE/volumes)
	NodeName     string       // the hepto node name, also Kubernetes'
	Addresses    []netip.Addr // the node's overlay IPv4 and IPv6 addresses
	ControlPlane bool         // this node runs the control plane
	Anchor       bool         // this node is an anchor
	ServiceCIDRs []netip.Prefix
	PodCIDRs     []netip.Prefix // the cluster's pod ranges
	ClusterDNS   []netip.Addr   // the pods' resolvers
	// ClusterDomain is the Kubernetes DNS zone ("": cluster.local).
	ClusterDomain string
	Overlay       []netip.Prefix // the overlay's prefixes: where node ports answer
	// DNS takes the names of the Kubernetes DNS specification (nil: none).
	DNS kubewatch.Sink
	// Members is the current membership: the control-plane nodes to ask
	// for certificates, and who asks.
	Members func() []membership.Node
	// Membership is the membership itself, with its removals, and its
	// changes (membership.Store's Current and Subscribe).
	Membership interface {
		Current() membership.Membership
		Subscribe() (<-chan struct{}, func())
	}
	Client *control.Client
	Logger *slog.Logger
	// ComponentLogLevel is the least level of the Kubernetes components'
	// lines (klog's) that reach Logger; nil means Warn.
	ComponentLogLevel slog.Leveler
	// CertValidity is how long the control plane's and the nodes'
	// certificates last (0: a year); the lab shortens it.
	CertValidity time.Duration
	// UpstreamTimings: controlplane.Options.UpstreamTimings.
	UpstreamTimings bool
	// ReservedPorts are the ports the node needs on its public addresses
	// (its WireGuard port; an anchor's STUN, TURN and relay ports):
	// refused to Services.
	ReservedPorts []ports.Range
	// NoImageSharing: containerd pulls from the registries alone, not
	// from the other nodes first (k8s/imageshare).
	NoImageSharing bool
}

// Layout is where a node's Kubernetes writes, under STATE/kubernetes.
type Layout struct {
	Root       string // STATE/kubernetes
	Certs      string // the kubelet's keys, certificates and kubeconfig
	Kubelet    string // the kubelet's root directory
	PodLogs    string // pods' logs
	Containerd string // containerd's root, state, socket and configuration
	CNIConf    string // the pod network configuration containerd reads
	Images     string // STATE/images: archives imported at start
	Registries string // STATE/registries: HOST/hosts.toml, mirrors of registry HOST
	Volumes    string // local persistent volumes: Options.VolumesDir, or STATE/volumes
	Hosts      string // containerd's registry configuration: Registries with the nodes' mirror first
}

// Node is a node's Kubernetes.
type Node struct {
	o      Options
	layout Layout
	role   string
	log    *slog.Logger
	cp     *controlplane.ControlPlane
	ctrd   *containerd.Containerd
	issuer *nodecert.Issuer
	setup  error // why the node components cannot run
	// portMap: the portmap plugin is there, chained for hostPorts.
	portMap bool

	// runtime is containerd as the kubelet needs it (tests replace it).
	runtime interface {
		Ready(context.Context) error
		Socket() string
	}

	endpoint endpointRef // the node-local apiserver endpoint, while it runs

	states      component.States
	certsReady  *component.Gate
	imagesReady *component.Gate
	ready       readyCache
	publisher   *publish.Publisher
	share       *imageshare.Share
}

// New prepares Kubernetes for the node. It does not fail: a node whose
// Kubernetes cannot be set up runs the fabric alone, and Status says why.
func New(o Options) *Node {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	// The kubelet, kube-proxy, containerd's client and the control plane
	// all log through klog: on every Kubernetes node, to hepto's log.
	component.RouteKlog(o.Logger, o.ComponentLogLevel)
	root := filepath.Join(o.StateDir, Dir)
	n := &Node{
		o: o, role: RoleWorker, log: o.Logger,
		layout: Layout{
			Root:       root,
			Certs:      filepath.Join(root, "node"),
			Kubelet:    filepath.Join(root, "kubelet"),
			PodLogs:    filepath.Join(root, "pod-logs"),
			Containerd: filepath.Join(root, "containerd"),
			CNIConf:    filepath.Join(root, "cni"),
			Images:     filepath.Join(o.StateDir, "images"),
			Registries: filepath.Join(o.StateDir, "registries"),
			Volumes:    cmp.Or(o.VolumesDir, filepath.Join(o.StateDir, "volumes")),
			Hosts:      filepath.Join(root, "registries"),
		},
		certsReady:  component.NewGate(),
		imagesReady: component.NewGate(),
	}
	n.ready.node = n
	if o.ControlPlane {
		n.role = RoleControlPlane
		cp, err := controlplane.New(controlplane.Options{
			DataDir:            root,
			NodeName:           o.NodeName,
			AdvertiseAddresses: o.Addresses,
			ServiceCIDRs:       o.ServiceCIDRs,
			ClusterCIDRs:       o.PodCIDRs,
			Logger:             o.Logger,
			ComponentLogLevel:  o.ComponentLogLevel,
			LeafValidity:       o.CertValidity,
			UpstreamTimings:    o.UpstreamTimings,
			Join:               n.joinControlPlane,
		})
		if err != nil {
			n.fail(RoleControlPlane, err)
			return n
		}
		n.cp = cp
		n.issuer = &nodecert.Issuer{PKI: cp.PKI, APIServers: n.apiServers}
	}
	cniDirs, err := n.cniBinDirs()
	if err == nil {
		n.ctrd, err = containerd.New(containerd.Options{
			Dir:          n.layout.Containerd,
			CNIConfDir:   n.layout.CNIConf,
			CNIBinDirs:   cniDirs,
			Registries:   n.layout.Hosts,
			SandboxImage: images.PauseName,
			Logger:       o.Logger,
		})
	}
	if err != nil {
		n.fail(compContainerd, err)
		n.ctrd = nil
		return n
	}
	n.runtime = n.ctrd
	n.publisher = n.newPublisher()
	n.share = n.newImageShare()
	for _, c := range []string{compContainerd, compKubelet, compProxy} {
		n.states.Set(c, component.Starting)
	}
	return n
}

// fail records why a part of Kubernetes cannot run: one line in the log,
// and the component's state.
func (n *Node) fail(comp string, err error) {
	n.setup = err
	n.states.Set(comp, "failed: "+err.Error())
	n.log.Error("kubernetes cannot start; the overlay runs without it", "err", err)
}

// Layout says where the node's Kubernetes writes.
func (n *Node) Layout() Layout { return n.layout }

// CNIConfDir is where the pod network configuration must be written for
// containerd ("" when no containerd runs).
func (n *Node) CNIConfDir() string {
	if n == nil || n.ctrd == nil {
		return ""
	}
	return n.layout.CNIConf
}

// Routes registers the control-plane's certificate issuer, and its
// answers to joining and removed control-plane nodes.
func (n *Node) Routes(mux *http.ServeMux) {
	if n != nil && n.issuer != nil {
		n.issuer.Routes(mux)
		mux.HandleFunc("POST "+control.PathControlPlaneJoin, n.handleControlPlaneJoin)
		mux.HandleFunc("POST "+control.PathEtcdRemove, n.handleEtcdRemove)
		mux.HandleFunc("POST "+control.PathSecretsKeys, n.handleSecretsKeys)
	}
	if n != nil && n.ctrd != nil {
		mux.HandleFunc("POST "+control.PathVolumes, n.handleVolume)
		mux.HandleFunc("GET "+control.PathBlobs, n.share.ServeBlob)
	}
}

// Services are the components to supervise, in start order.
func (n *Node) Services() []supervisor.Service {
	var out []supervisor.Service
	if n == nil {
		return nil
	}
	if n.cp != nil {
		out = append(out, n.cp.Services()...)
		out = append(out, supervisor.Func("nodes", n.runNodes), supervisor.Func("load-balancers", n.runLoadBalancers), supervisor.Func("local-volumes", n.runStorage))
	}
	if n.ctrd != nil {
		out = append(out,
			n.tracked(compContainerd, func(ctx context.Context) error {
				// The state follows this run only: a containerd that
				// exits before it is ready leaves no waiter behind.
				run, cancel := context.WithCancel(ctx)
				defer cancel()
				go func() {
					if n.ctrd.Ready(run) == nil {
						n.states.SetLive(run, compContainerd, component.Running)
					}
				}()
				return n.ctrd.Run(ctx)
			}),
			supervisor.Func("kubelet-certs", n.runCerts),
			supervisor.Func("apiserver-endpoint", n.runEndpoint),
			supervisor.Func("images", n.runImages),
			supervisor.Func(compKubelet, n.runKubelet),
			supervisor.Func(compProxy, n.runProxy),
			n.tracked(compNetpol, n.runNetworkPolicy),
			supervisor.Func("publish", n.runPublish),
			supervisor.Func("image-sharing", n.runImageShare),
		)
		if n.o.DNS != nil {
			out = append(out, supervisor.Func("cluster-dns", n.runClusterDNS))
		}
	}
	return out
}

// tracked is a service whose state shows among the components.
func (n *Node) tracked(name string, run func(context.Context) error) supervisor.Service {
	return supervisor.Func(name, func(ctx context.Context) error {
		n.states.Set(name, component.Starting)
		err := run(ctx)
		n.states.Finish(ctx, name, err)
		return err
	})
}

func (n *Node) runKubelet(ctx context.Context) error {
	if err := n.certsReady.Wait(ctx); err != nil {
		return nil
	}
	if err := n.runtime.Ready(ctx); err != nil {
		return nil
	}
	// The pause image first: a pod never waits for a pull of it.
	if err := n.imagesReady.Wait(ctx); err != nil {
		return nil
	}
	return n.runOnce(ctx, compKubelet, func(ctx context.Context) error {
		return kubeletRun(ctx, kubelet.Options{
			Dir:        n.layout.Kubelet,
			PodLogsDir: n.layout.PodLogs,
			NodeName:   n.o.NodeName,
			NodeIPs:    n.o.Addresses,
			Kubeconfig: nodecert.Dir(n.layout.Certs).Path(nodecert.KubeconfigFile),
			ClientCA:   nodecert.Dir(n.layout.Certs).Path(nodecert.CAFile),
			CertFile:   nodecert.Dir(n.layout.Certs).Path(nodecert.ServingCertFile),
			KeyFile:    nodecert.Dir(n.layout.Certs).Path(nodecert.ServingKeyFile),
			Runtime:    n.runtime.Socket(),
			CgroupRoot: CgroupRoot(n.o.StateDir, n.o.NodeName),
			ClusterDNS: n.o.ClusterDNS,
			Domain:     n.o.ClusterDomain,
			NodeLease:  n.nodeLease(),
			Taints:     n.taints(),
		})
	})
}

// The kubelet's and kube-proxy's Run; tests replace them.
var (
	kubeletRun = kubelet.Run
	proxyRun   = proxy.Run
)

// startWindow tells a component that failed to start from one that ran,
// then stopped: the kubelet and kube-proxy fail to start (bad
// configuration, cgroups, a port taken, nftables) within seconds.
var startWindow = time.Minute

// runOnce runs a component that cannot start again in this process once
// it ran (the kubelet, kube-proxy: see kubelet.ErrRanOnce). One that ends
// within startWindow failed to start: its state and one log line say so,
// and the fabric goes on without it, as when Kubernetes cannot start at
// all. One that ran longer, then stopped, ends hepto with a Fatal error
// naming it, so that systemd starts hepto, and it, again.
func (n *Node) runOnce(ctx context.Context, comp string, run func(context.Context) error) error {
	n.states.Set(comp, component.Running)
	began := time.Now()
	err := run(ctx)
	if ctx.Err() != nil {
		n.states.Set(comp, component.Stopped)
		return nil
	}
	if err == nil {
		err = errors.New("stopped")
	}
	n.states.Set(comp, "failed: "+err.Error())
	if ran := time.Since(began); ran >= startWindow {
		return supervisor.Fatal(fmt.Errorf("stopped after running %s; exiting, as it cannot start again in this process: %w", ran.Round(time.Second), err))
	}
	n.log.Error(comp+" failed to start; the overlay runs without it: restart hepto to start it again", "err", err)
	return nil
}

// Status is the node's Kubernetes role, its Ready condition and the state
// of each component. A nil Node is a node without Kubernetes; so for the
// other methods.
func (n *Node) Status(ctx context.Context) localapi.KubernetesStatus {
	if n == nil {
		return localapi.KubernetesStatus{Role: RoleNone, Components: map[string]string{}}
	}
	return localapi.KubernetesStatus{Role: n.role, Components: n.components(), Ready: n.ready.get(ctx), ControlPlane: n.controlPlaneStatus(), APIServer: n.endpointStatus(),
		Published: n.Published(ctx)}
}

// components is each component's state.
func (n *Node) components() map[string]string {
	out := n.states.Snapshot()
	if out == nil {
		out = map[string]string{}
	}
	if n.cp != nil {
		for k, v := range n.cp.States() {
			out[k] = v
		}
	}
	return out
}

// ComponentsUp tells, for hepto_component_up, which components run. It
// reads the components' states only, never the apiserver: a scrape does
// not wait on it, nor load it.
func (n *Node) ComponentsUp() map[string]bool {
	out := map[string]bool{}
	if n == nil {
		return out
	}
	for name, state := range n.components() {
		out[name] = state == component.Running || state == component.Standby
	}
	return out
}

// ErrNotControlPlane is the answer of a node without the control plane to
// a request for admin credentials.
var ErrNotControlPlane = errors.New("this node does not run the Kubernetes control plane")

// ErrNoRuntime is the answer to an image import where no containerd runs.
var ErrNoRuntime = errors.New("no container runtime runs on this node")

// Snapshot writes a snapshot of the control plane's etcd to w.
func (n *Node) Snapshot(ctx context.Context, w io.Writer) error {
	if n == nil || n.cp == nil {
		return ErrNotControlPlane
	}
	return n.cp.Snapshot(ctx, w)
}

// ImportImage imports an image archive into the node's containerd.
func (n *Node) ImportImage(ctx context.Context, archive string) error {
	if n == nil || n.ctrd == nil {
		return ErrNoRuntime
	}
	return n.ctrd.Import(ctx, archive)
}

// CgroupRoot is the node's cgroup parent: its pods' cgroups go under it.
// The state directory's ID tells apart nodes of one name on one machine.
func CgroupRoot(stateDir, node string) string {
	return "/hepto/" + node + "-" + state.Dir(stateDir).ID()
}

// AdminKubeconfigFile is the admin kubeconfig on disk (server on
// loopback), for `hepto kubectl`.
func AdminKubeconfigFile(stateDir string) string {
	return filepath.Join(stateDir, Dir, "kubeconfig", "admin.conf")
}

func apiServerURL(a netip.Addr) string {
	return "https://" + net.JoinHostPort(a.String(), strconv.Itoa(controlplane.DefaultAPIServerPort))
}

// isControlPlane tells the members that run the control plane: those with
// the role (the node made by `hepto init`).
func isControlPlane(m membership.Node) bool { return m.IsControlPlane() }

// controlPlanes are the members that run the control plane.
func controlPlanes(members []membership.Node) []membership.Node {
	var out []membership.Node
	for _, m := range members {
		if isControlPlane(m) {
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b membership.Node) int { return a.Index - b.Index })
	return out
}

// apiServers are the apiservers' URLs, on their overlay IPv4 addresses.
func (n *Node) apiServers() []string {
	var out []string
	if n.cp != nil {
		out = append(out, apiServerURL(n.o.Addresses[0]))
	}
	for _, m := range controlPlanes(n.o.Members()) {
		if m.Name != n.o.NodeName && len(m.OverlayIPs) > 0 {
			out = append(out, apiServerURL(m.OverlayIPs[0]))
		}
	}
	return out
}

// member finds who an overlay address belongs to.
func (n *Node) member(a netip.Addr) (nodecert.Member, bool) {
	for _, m := range n.o.Members() {
		if slices.Contains(m.OverlayIPs, a) {
			return nodecert.Member{Name: m.Name, IPs: m.OverlayIPs}, true
		}
	}
	return nodecert.Member{}, false
}

// runCerts gets the node's kubelet certificates, then renews them before
// they expire.
func (n *Node) runCerts(ctx context.Context) error {
	dir := nodecert.Dir(n.layout.Certs)
	backoff := time.Second
	for {
		wait := time.Until(dir.RenewAt())
		if wait > 0 && !localServer(dir) {
			wait = 0 // written for an apiserver of its own: again, for the endpoint
		}
		if wait > 0 {
			n.certsReady.Open()
		} else if err := n.fetchCerts(ctx, dir); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			n.log.Warn("kubelet certificates", "err", err, "retry", backoff)
			wait, backoff = backoff, min(2*backoff, time.Minute)
		} else {
			n.log.Info("kubelet certificates issued", "renew", dir.RenewAt().Format(time.RFC3339))
			backoff = time.Second
			// Never again at once: certificates due as soon as issued
			// (a clock far off) would make this a busy loop.
			wait = max(time.Until(dir.RenewAt()), 10*time.Second)
			n.certsReady.Open()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(wait, time.Hour)):
		}
	}
}

// localServer tells whether the node's kubeconfigs name the node-local
// endpoint (those of before it named an apiserver).
func localServer(dir nodecert.Dir) bool {
	cfg, err := clientcmd.LoadFromFile(dir.Path(nodecert.KubeconfigFile))
	if err != nil {
		return false
	}
	for _, c := range cfg.Clusters {
		if c.Server != localAPIURL() {
			return false
		}
	}
	return true
}

// storeCerts writes the node's certificates and its clients'
// kubeconfigs, whose server is the node-local endpoint.
func (n *Node) storeCerts(dir nodecert.Dir, certs control.NodeCerts) error {
	certs.APIServers = []string{localAPIURL()}
	return dir.Store(certs)
}

// fetchCerts asks this node's issuer (control plane) or another
// control-plane node for the certificates.
func (n *Node) fetchCerts(ctx context.Context, dir nodecert.Dir) error {
	req, err := dir.Request()
	if err != nil {
		return err
	}
	var certs control.NodeCerts
	if n.issuer != nil {
		self, _ := n.member(n.o.Addresses[0])
		if certs, err = n.issuer.Issue(self, req); err != nil {
			return err
		}
		return n.storeCerts(dir, certs)
	}
	cps := controlPlanes(n.o.Members())
	if len(cps) == 0 {
		return errors.New("no control-plane node in the membership")
	}
	var errs []error
	for _, cp := range cps {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.o.Client.Post(cctx, cp.OverlayIPs[0], control.PathNodeCerts, req, &certs)
		cancel()
		if err == nil {
			return n.storeCerts(dir, certs)
		}
		errs = append(errs, fmt.Errorf("%s: %w", cp.Name, err))
	}
	return errors.Join(errs...)
}

// Taints of the nodes that run the cluster rather than its tenants: a
// tenant's pod lands on a control-plane node (which holds the CAs and
// etcd) or an anchor (the Internet's way in) only when it tolerates them.
// The kubelet sets them when it registers its Node; an administrator may
// take them off (kubectl taint nodes NODE KEY:NoSchedule-), and they stay
// off.
var (
	ControlPlaneTaint = corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}
	AnchorTaint       = corev1.Taint{Key: "hepto.net/anchor", Effect: corev1.TaintEffectNoSchedule}
)

// taints are the taints this node registers with.
func (n *Node) taints() []corev1.Taint {
	var out []corev1.Taint
	if n.o.ControlPlane {
		out = append(out, ControlPlaneTaint)
	}
	if n.o.Anchor {
		out = append(out, AnchorTaint)
	}
	return out
}

// nodeLease is the kubelet's node lease: hepto's, or upstream's with
// the upstream timings.
func (n *Node) nodeLease() time.Duration {
	if n.o.UpstreamTimings {
		return 0
	}
	return controlplane.NodeLease
}

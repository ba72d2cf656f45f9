// Package daemon composes a hepto node: it reads the state directory,
// opens the tunnel, and runs every other part (mesh, anchor duties, pod
// networking, DNS, metrics, the control protocol and the local socket) as
// services under one supervisor.
package daemon

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/hepto-net/hepto/anchor"
	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/k8s/publish/ports"
	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/mesh"
	"github.com/hepto-net/hepto/metrics"
	"github.com/hepto-net/hepto/nat"
	"github.com/hepto-net/hepto/podnet"
	"github.com/hepto-net/hepto/state"
	"github.com/hepto-net/hepto/supervisor"
	"github.com/hepto-net/hepto/tunnel"
)

// Config is what `hepto run` is given.
type Config struct {
	State     string
	Join      string // join token, first start only
	Port      uint16 // UDP port; 0: an anchor's endpoint port, else random
	Userspace bool   // gVisor netstack instead of a TUN device
	SOCKS5    string // netstack mode: SOCKS5 proxy into the overlay
	// External ICE servers, beside the anchors': stun: and turn: URIs; TURN
	// credentials follow the TURN REST scheme with TURNSecret.
	STUN, TURN []string
	TURNSecret string
	// DirectRetry is the wait before a relayed pair first tries to go
	// direct (then doubling); 0: the default, 30 s.
	DirectRetry time.Duration
	Metrics     string // Prometheus metrics address; empty: none
	// CertValidity shortens the Kubernetes certificates' life (0: a year),
	// for the lab to see them renewed.
	CertValidity time.Duration
	// UpstreamTimings runs the control plane with upstream's timings (the
	// lab compares them with hepto's).
	UpstreamTimings bool
	// BackupInterval is the time between scheduled backups on a
	// control-plane anchor; 0: none.
	BackupInterval time.Duration
	// RTTInterval is the time between round-trip measurements; 0: none.
	RTTInterval time.Duration
	DNS         DNSConfig // the node's DNS server; see dns.go
	CNIConfDir  string    // TUN mode: where the pod network configuration goes ("": not written)
	// Kubernetes runs Kubernetes on a TUN-mode node: the control plane too
	// on the node made by `hepto init`.
	Kubernetes bool
	// NoImageSharing: containerd pulls from the registries alone, not
	// from the other nodes first.
	NoImageSharing bool
	// RelayPorts are an anchor's TURN relay ports, "MIN-MAX" (UDP; "":
	// 49152-65535); the UDP ports outside are free for Services.
	RelayPorts string
	// VolumesDir holds the node's local persistent volumes ("":
	// STATE/volumes).
	VolumesDir string
	// Zone is the node's zone, chosen by its owner ("": found from its
	// LAN, see membership.ChooseZone).
	Zone string
	// MemoryLimit is a soft memory limit for the fabric alone (0: none);
	// not set where Kubernetes runs, whose heap is far larger.
	MemoryLimit int64
	Logger      *slog.Logger
}

// Defaults of `hepto run`.
const (
	DefaultSOCKS5      = "127.0.0.1:1055"
	DefaultRTTInterval = 90 * time.Second
	DefaultCNIConfDir  = podnet.DefaultCNIConfDir
)

// node is what the state directory holds.
type node struct {
	st      state.Dir
	cluster membership.Cluster
	self    membership.Node
	priv    key.Private
	signer  ed25519.PrivateKey // anchors only
	store   *membership.Store
}

// Run starts the node and serves until ctx is done; then it removes what it
// set up (TUN device, routes, socket) and returns nil. A part that cannot
// start, or the tunnel's end, is an error.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Zone != "" {
		if err := membership.CheckName("zone", cfg.Zone); err != nil {
			return fmt.Errorf("--zone: %w", err)
		}
	}
	st := state.Dir(cfg.State)
	if !st.Has(state.NodeFile) {
		if cfg.Join == "" {
			return fmt.Errorf("%s holds no node: run `hepto init` to make a cluster, or start with --join TOKEN", cfg.State)
		}
		if err := join(ctx, cfg); err != nil {
			return err
		}
	} else if cfg.Join != "" {
		if err := checkRejoin(st, cfg.Join); err != nil {
			return err
		}
		cfg.Logger.Info("already a member of the cluster: --join ignored")
	}
	n, err := load(st)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, n)
}

// NeedsKubernetes tells whether `hepto run` with cfg runs Kubernetes: a
// TUN-mode node asking for it, unless its record says it was admitted to
// the fabric only (unknown before it joins, or if the state does not load:
// yes, and Run tells).
func NeedsKubernetes(cfg Config) bool {
	if !cfg.Kubernetes || cfg.Userspace {
		return false
	}
	n, err := load(state.Dir(cfg.State))
	return err != nil || n.self.RunsKubernetes()
}

// load reads the state directory; a missing or corrupt file is an error and
// nothing is rewritten.
func load(st state.Dir) (*node, error) {
	n := &node{st: st}
	if err := st.Read(state.ClusterFile, &n.cluster); err != nil {
		return nil, err
	}
	if err := n.cluster.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", st.Path(state.ClusterFile), err)
	}
	var nk nodeKey
	if err := st.Read(state.NodeKeyFile, &nk); err != nil {
		return nil, err
	}
	n.priv = nk.PrivateKey
	var signedSelf membership.Signed
	if err := st.Read(state.NodeFile, &signedSelf); err != nil {
		return nil, err
	}
	self, err := membership.OpenNode(signedSelf, n.cluster)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", st.Path(state.NodeFile), err)
	}
	if self.PublicKey != n.priv.Public() {
		return nil, fmt.Errorf("%s does not match the key in %s", st.Path(state.NodeFile), st.Path(state.NodeKeyFile))
	}
	n.self = self
	var set membership.Set
	if err := st.Read(state.MembersFile, &set); err != nil {
		return nil, err
	}
	persist := func(s membership.Set) error { return st.Write(state.MembersFile, s, 0o644) }
	if n.store, err = membership.NewStore(n.cluster, set, self, persist); err != nil {
		var removed *membership.RemovedError
		if errors.As(err, &removed) {
			return nil, err
		}
		return nil, fmt.Errorf("%s: %w", st.Path(state.MembersFile), err)
	}
	// The latest revision of this node's record (an anchor's index range
	// changes when it admits another anchor).
	if cur, ok := n.store.Current().Find(self.Name); ok && cur.PublicKey == self.PublicKey {
		n.self = cur
	}
	if st.Has(state.ClusterKeyFile) {
		var sk membership.SigningKey
		if err := st.Read(state.ClusterKeyFile, &sk); err != nil {
			return nil, err
		}
		if len(sk.PrivateKey) != ed25519.PrivateKeySize || !sk.PrivateKey.Public().(ed25519.PublicKey).Equal(n.cluster.PublicKey) {
			return nil, fmt.Errorf("%s is not this cluster's signing key", st.Path(state.ClusterKeyFile))
		}
		n.signer = sk.PrivateKey
	}
	return n, nil
}

// serve opens the tunnel and runs the services on it.
func serve(ctx context.Context, cfg Config, n *node) error {
	log := cfg.Logger
	book, err := loadPaths(n.st)
	if err != nil {
		return err
	}
	// The port: --port, else an anchor's endpoint's, else the last run's.
	port, saved := cfg.Port, false
	if port == 0 && n.self.Endpoint != "" {
		port, _ = endpointPort(n.self.Endpoint)
	}
	if port == 0 && book.Port != 0 {
		port, saved = book.Port, true
	}
	var onPacket atomic.Pointer[mesh.Mesh] // the mesh, once made
	topts := tunnel.Options{
		Netstack:   cfg.Userspace,
		ListenPort: port,
		PrivateKey: n.priv,
		Addresses:  n.self.HostPrefixes(),
		Logger:     log,
		OnPacket: func(pkt []byte, from netip.AddrPort) {
			if m := onPacket.Load(); m != nil {
				m.OnPacket(pkt, from)
			}
		},
		OnHandshake: func() {
			if m := onPacket.Load(); m != nil {
				m.OnHandshake()
			}
		},
	}
	tun, err := tunnel.New(topts)
	if err != nil && saved {
		log.Warn("last run's UDP port is taken: another one", "port", port, "err", err)
		topts.ListenPort = 0
		tun, err = tunnel.New(topts)
	}
	if err != nil {
		return err
	}
	defer tun.Close()
	if err := book.setPort(tun.ListenPort()); err != nil {
		log.Warn("UDP port not saved", "err", err)
	}

	var mh *mesh.Mesh
	client := control.NewClient(tun.DialContext)
	identity := &control.Identity{Key: n.priv, Member: func(ip netip.Addr) (membership.Node, bool) { return n.store.Current().At(ip) }}
	client.Identity = identity
	sup := supervisor.New(log)
	relay := ports.Range{Proto: "udp", Min: nat.RelayMin, Max: nat.RelayMax}
	if cfg.RelayPorts != "" {
		if relay, err = ports.ParseRange(cfg.RelayPorts); err != nil || relay.Proto != "udp" {
			return fmt.Errorf("--relay-ports %q: want MIN-MAX (UDP)", cfg.RelayPorts)
		}
	}
	var an *anchor.Anchor
	if n.signer != nil {
		an, err = anchor.New(anchor.Options{
			RelayMin: relay.Min, RelayMax: relay.Max,
			State: n.st, Store: n.store, Self: n.self, Signer: n.signer, Client: client,
			JoinPeersChanged: func() { mh.Kick() }, Logger: log,
			Restored: n.st.Has(state.RestoredFile),
			BeforeRemove: func(ctx context.Context, node membership.Node) error {
				return removeEtcdMember(ctx, client, n.store.Current().Nodes, node)
			},
		})
		if err != nil {
			return err
		}
	}
	m := metrics.New(func() []metrics.Peer { return mh.MetricPeers() })
	m.Services(func() map[string]bool { return servicesUp(sup) })
	dnsSvc := newDNS(cfg.DNS, n, tun, m, log)
	// Kubernetes on TUN-mode nodes only; nil: the fabric alone.
	var kube *kubeNode
	runKube := cfg.Kubernetes && !cfg.Userspace
	if runKube && !n.self.RunsKubernetes() {
		log.Info("no Kubernetes: this node was admitted to the fabric only")
		runKube = false
	}
	if runKube {
		kube = startKube(cfg, n, tun, dnsSvc, relay, client)
	}
	m.Components(kube.ComponentsUp)
	m.Published(func() []metrics.Published { return publishedMetrics(kube) })
	if cfg.MemoryLimit > 0 && kube == nil {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	mo := mesh.Options{
		Tunnel: tun, Store: n.store, Self: n.self, PrivateKey: n.priv, Client: client, Metrics: m, RTTInterval: cfg.RTTInterval, Logger: log,
		ICE:        mesh.ICEOptions{STUN: cfg.STUN, TURN: cfg.TURN, TURNSecret: cfg.TURNSecret, Retry: cfg.DirectRetry},
		Remembered: book.direct(), Remember: book.setDirect,
	}
	if an != nil {
		mo.Synced = an.HeardFromCluster
	}
	if an != nil {
		mo.JoinPeers = an.JoinPeers
	}
	mh = mesh.New(mo)
	onPacket.Store(mh)

	// The tunnel first: its end ends the node (systemd restarts it).
	sup.Add(supervisor.Func("tunnel", func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case <-tun.Done():
			return errors.New("the WireGuard device stopped")
		}
	}), true)
	sup.Add(supervisor.Func("home", (&homeReporter{n: n, zone: cfg.Zone, anchor: an, client: client, log: log}).run), false)
	// A membership that removes this node stops it.
	sup.Add(supervisor.Func("membership", mh.Removed), true)
	ctl := control.NewServer(n.self.OverlayIPs, tun.Listen)
	ctl.Gate = mh.Gate
	ctl.Identity = identity
	mh.Routes(ctl.Mux)
	if !cfg.Userspace {
		sup.Add(podnet.New(podnet.Options{
			Tun: tun.Name(), Networks: n.cluster.Networks, Pods: n.self.PodCIDRs, Relay: an != nil,
			MTU: tunnel.DefaultMTU, ConfDirs: []podnet.ConfDir{{Dir: cfg.CNIConfDir}, {Dir: kube.CNIConfDir(), Chain: kube.CNIChain()}}, StateDir: cfg.State, Logger: log,
		}), false)
	}
	for _, s := range mh.Services() {
		sup.Add(s, false)
	}
	if an != nil {
		an.Routes(ctl.Mux)
		for _, s := range an.Services(m.TURN(), mesh.ResolveEndpoint) {
			sup.Add(s, false)
		}
	}
	kube.Routes(ctl.Mux)
	ctl.Mux.HandleFunc("POST "+control.PathBackups, handleBackupCopy(n.st))
	if an != nil && kube != nil && n.self.IsControlPlane() && cfg.BackupInterval > 0 {
		sup.Add(&backupService{st: n.st, kube: kube, store: n.store, self: n.self.Name, client: client, interval: cfg.BackupInterval, log: log}, false)
	}
	sup.Add(ctl, false)
	sup.Add(&localAPI{st: n.st, node: n, tun: tun, mesh: mh, anchor: an, kube: kube, sup: sup}, false)
	sup.Add(dnsSvc, false)
	sup.Add(&metricsService{addr: cfg.Metrics, self: n.self, tun: tun, m: m, log: log}, false)
	if cfg.Userspace {
		addr := cfg.SOCKS5
		if addr == "" {
			addr = DefaultSOCKS5
		}
		sup.Add(supervisor.Func("socks5", func(ctx context.Context) error {
			log.Info("SOCKS5 proxy into the overlay", "addr", addr)
			return tun.ServeSOCKS5(ctx, addr)
		}), false)
	}
	// Kubernetes last: the fabric comes first, and runs without it.
	for _, s := range kube.Services() {
		sup.Add(s, false)
	}
	log.Info("node up", "name", n.self.Name, "cluster", n.cluster.Name, "overlay", n.self.OverlayIPs,
		"port", tun.ListenPort(), "anchor", an != nil, "members", len(n.store.Current().Nodes))
	err = sup.Run(ctx)
	if err == nil {
		log.Info("stopped")
	}
	return err
}

// servicesUp tells, for each service, whether it runs (or finished its
// work): what hepto_service_up shows.
func servicesUp(sup *supervisor.Supervisor) map[string]bool {
	out := map[string]bool{}
	for _, st := range sup.States() {
		out[st.Name] = st.State == supervisor.Running || st.State == supervisor.Done
	}
	return out
}

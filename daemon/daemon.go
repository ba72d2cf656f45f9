// Package daemon wires a hepto node together: state on disk, the WireGuard
// data plane, the membership, the control protocol inside the overlay and
// the local command socket.
package daemon

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/metrics"
	"github.com/hepto-net/hepto/nat"
	"github.com/hepto-net/hepto/state"
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
	Metrics    string // Prometheus metrics address; empty: none
	// RTTInterval is the time between round-trip measurements; 0: none.
	RTTInterval time.Duration
	DNS         DNSConfig // the node's DNS server; see dns.go
	CNIConfDir  string    // TUN mode: where the pod network configuration goes ("": not written); see pods.go
	Logger      *slog.Logger
}

// DefaultSOCKS5 is where a netstack-mode node offers its proxy.
const DefaultSOCKS5 = "127.0.0.1:1055"

// Daemon is a running node.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	st      state.Dir
	cluster membership.Cluster
	self    membership.Node
	priv    key.Private
	signer  ed25519.PrivateKey // anchors only
	tun     *tunnel.Tunnel
	dns     dnsState

	mu      sync.Mutex
	members membership.Membership
	signedM membership.Signed
	tokens  *tokenBook // anchors only
	applyMu sync.Mutex // serializes tunnel reconfiguration

	// NAT traversal (non-anchors), under mu but natConn.
	natConn     atomic.Pointer[nat.PacketConn]
	nat         *nat.Manager
	paths       map[string]nat.Path // peers with a path of their own
	pathChanges map[string]int
	turnCreds   nat.Credentials

	metrics *metrics.Metrics
	rtt     map[string]time.Duration // last round trip to each peer, under mu
}

// Run starts the node and serves until ctx is done; then it removes what it
// set up (TUN device, routes, socket) and returns nil.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
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
	d, err := load(cfg)
	if err != nil {
		return err
	}
	return d.serve(ctx)
}

// load reads the state directory; a missing or corrupt file is an error and
// nothing is rewritten.
func load(cfg Config) (*Daemon, error) {
	st := state.Dir(cfg.State)
	d := &Daemon{cfg: cfg, log: cfg.Logger, st: st,
		paths: map[string]nat.Path{}, pathChanges: map[string]int{}, rtt: map[string]time.Duration{}}
	d.metrics = metrics.New(d.metricPeers)
	if err := st.Read(state.ClusterFile, &d.cluster); err != nil {
		return nil, err
	}
	if err := d.cluster.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", st.Path(state.ClusterFile), err)
	}
	var nk nodeKey
	if err := st.Read(state.NodeKeyFile, &nk); err != nil {
		return nil, err
	}
	d.priv = nk.PrivateKey
	var signedSelf membership.Signed
	if err := st.Read(state.NodeFile, &signedSelf); err != nil {
		return nil, err
	}
	self, err := membership.OpenNode(signedSelf, d.cluster)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", st.Path(state.NodeFile), err)
	}
	if self.PublicKey != d.priv.Public() {
		return nil, fmt.Errorf("%s does not match the key in %s", st.Path(state.NodeFile), st.Path(state.NodeKeyFile))
	}
	d.self = self
	if err := st.Read(state.MembersFile, &d.signedM); err != nil {
		return nil, err
	}
	if d.members, err = membership.OpenMembership(d.signedM, d.cluster); err != nil {
		return nil, fmt.Errorf("%s: %w", st.Path(state.MembersFile), err)
	}
	if st.Has(state.ClusterKeyFile) {
		var sk membership.SigningKey
		if err := st.Read(state.ClusterKeyFile, &sk); err != nil {
			return nil, err
		}
		if len(sk.PrivateKey) != ed25519.PrivateKeySize || !sk.PrivateKey.Public().(ed25519.PublicKey).Equal(d.cluster.PublicKey) {
			return nil, fmt.Errorf("%s is not this cluster's signing key", st.Path(state.ClusterKeyFile))
		}
		d.signer = sk.PrivateKey
		if d.tokens, err = loadTokens(st); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *Daemon) isAnchor() bool { return d.signer != nil }

func (d *Daemon) serve(ctx context.Context) error {
	port := d.cfg.Port
	if port == 0 && d.self.Endpoint != "" {
		port, _ = endpointPort(d.self.Endpoint)
	}
	tun, err := tunnel.New(tunnel.Options{
		Netstack:   d.cfg.Userspace,
		ListenPort: port,
		PrivateKey: d.priv,
		Addresses:  d.self.HostPrefixes(),
		Logger:     d.log,
		OnPacket:   d.onPacket,
	})
	if err != nil {
		return err
	}
	d.tun = tun
	defer tun.Close()
	if d.isAnchor() && !d.cfg.Userspace {
		if err := enableForwarding(); err != nil {
			return err
		}
	}
	if err := d.apply(); err != nil {
		return err
	}
	if !d.cfg.Userspace {
		stopPods, err := d.startPods()
		if err != nil {
			return err
		}
		defer stopPods()
		if stop, err := overlayRules([]netip.Prefix{d.cluster.Networks.OverlayV4, d.cluster.Networks.OverlayV6}); err != nil {
			d.log.Warn("no firewall for the overlay addresses: a LAN neighbour could reach them without WireGuard", "err", err)
		} else {
			defer stop()
		}
	}
	d.log.Info("node up", "name", d.self.Name, "cluster", d.cluster.Name, "overlay", d.self.OverlayIPs,
		"port", tun.ListenPort(), "anchor", d.isAnchor(), "members", len(d.members.Nodes))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	errc := make(chan error, 4)
	run := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errc <- err
			}
		}()
	}
	run(d.serveControl)
	run(d.serveLocal)
	run(d.serveMetrics)
	run(d.measureRTT)
	run(d.serveDNS)
	if !d.isAnchor() {
		run(d.syncMembership)
		run(d.startICE)
	} else {
		run(d.expireTokens)
		if err := d.startTURNServer(ctx); err != nil {
			return err
		}
	}
	if d.cfg.Userspace {
		addr := d.cfg.SOCKS5
		if addr == "" {
			addr = DefaultSOCKS5
		}
		d.log.Info("SOCKS5 proxy into the overlay", "addr", addr)
		run(func(ctx context.Context) error { return tun.ServeSOCKS5(ctx, addr) })
	}
	select {
	case <-ctx.Done():
		d.log.Info("stopping")
		return nil
	case err := <-errc:
		return err
	}
}

// serveControl serves the control protocol on each overlay address.
func (d *Daemon) serveControl(ctx context.Context) error {
	srv := &http.Server{Handler: d.controlHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	errc := make(chan error, len(d.self.OverlayIPs))
	for _, ip := range d.self.OverlayIPs {
		ln, err := d.tun.Listen("tcp", netip.AddrPortFrom(ip, control.Port))
		if err != nil {
			return fmt.Errorf("control listener on %v: %w", ip, err)
		}
		go func() { errc <- srv.Serve(ln) }()
	}
	err := <-errc
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// onPacket takes what came on the WireGuard socket and is not WireGuard:
// ICE's on a home, STUN binding requests on an anchor.
func (d *Daemon) onPacket(pkt []byte, from netip.AddrPort) {
	if c := d.natConn.Load(); c != nil {
		c.Deliver(pkt, from)
		return
	}
	if d.isAnchor() {
		if resp, ok := nat.BindingResponse(pkt, from); ok {
			d.tun.SendRaw(resp, from)
		}
	}
}

// httpClient dials through the overlay and keeps no idle connection, so an
// idle link carries nothing but WireGuard keepalives.
func (d *Daemon) httpClient(timeout time.Duration) *http.Client {
	return overlayClient(d.tun, timeout)
}

func overlayClient(t *tunnel.Tunnel, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DialContext:       func(ctx context.Context, n, a string) (net.Conn, error) { return t.DialContext(ctx, n, a) },
		DisableKeepAlives: true,
	}}
}

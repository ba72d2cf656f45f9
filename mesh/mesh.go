// Package mesh keeps a node's links to its peers: which peers the tunnel
// has and over which path (the anchor's relay, or a path of their own found
// by ICE), the membership's spreading, the signalling, round-trip
// measurement, and the state that status and metrics report.
package mesh

import (
	"context"
	"log/slog"
	"maps"
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
	"github.com/hepto-net/hepto/supervisor"
	"github.com/hepto-net/hepto/tunnel"
)

// Options configure a Mesh.
type Options struct {
	Tunnel *tunnel.Tunnel
	Store  *membership.Store
	Self   membership.Node
	Client *control.Client // calls to other nodes, through the overlay
	// PrivateKey is the node's WireGuard key: it authenticates signalling
	// that other members pass on (icemac.go).
	PrivateKey key.Private
	// JoinPeers are extra WireGuard peers (an anchor's join peers).
	JoinPeers func(now time.Time) []tunnel.Peer
	Metrics   *metrics.Metrics
	// RTTInterval is the time between round-trip measurements; 0: none.
	RTTInterval time.Duration
	ICE         ICEOptions
	// Remembered are the direct paths' endpoints of the last run, by node
	// name; Remember saves them when they change (nil: not kept).
	Remembered map[string]netip.AddrPort
	Remember   func(map[string]netip.AddrPort) error
	// Synced, when set, is called when this node's membership met another
	// node's (a push merged, a pull found them equal).
	Synced func()
	Logger *slog.Logger
}

// ICEOptions are the extra STUN and TURN servers, beside the anchors'.
type ICEOptions struct {
	STUN, TURN []string
	TURNSecret string        // TURN REST secret of the TURN servers
	Retry      time.Duration // first direct attempt of a relayed pair; 0: nat's default
}

// Mesh is a node's view of its links.
type Mesh struct {
	o     Options
	log   *slog.Logger
	kick  chan struct{} // reconcile the tunnel's peers
	store *membership.Store

	natConn atomic.Pointer[nat.PacketConn]
	probes  probes

	mu          sync.Mutex
	nat         *nat.Manager
	paths       map[string]nat.Path // peers with a path of their own
	pathChanges map[string]int
	pathSince   map[string]time.Time     // when each peer's path last changed
	suspects    map[string]bool          // peers whose path is being checked
	anchorsDown map[string]bool          // anchors that stopped answering (watchAnchors)
	rtt         map[string]time.Duration // last round trip to each peer
	turnCreds   control.TURNCredentials

	quarantineEnd atomic.Pointer[time.Time] // anchors: when apply must run again

	handshakes  chan struct{}             // a handshake arrived (OnHandshake)
	savedDirect map[string]netip.AddrPort // as last saved; the peers service's own

	removedOnce sync.Once
	removedCh   chan struct{} // closed when a membership removes this node
	removedErr  error
}

// New returns a mesh; its services do the work.
func New(o Options) *Mesh {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.JoinPeers == nil {
		o.JoinPeers = func(time.Time) []tunnel.Peer { return nil }
	}
	m := &Mesh{
		o: o, log: o.Logger, store: o.Store, kick: make(chan struct{}, 1), removedCh: make(chan struct{}), handshakes: make(chan struct{}, 1),
		probes: probes{heard: map[string]time.Time{}, sent: map[string]time.Time{}, inFlight: map[string]chan struct{}{}},
		paths:  map[string]nat.Path{}, pathChanges: map[string]int{}, pathSince: map[string]time.Time{}, suspects: map[string]bool{}, anchorsDown: map[string]bool{},
		rtt: map[string]time.Duration{},
	}
	m.seedRemembered(o.Remembered)
	m.savedDirect = o.Remembered
	return m
}

func (m *Mesh) anchorSelf() bool { return m.o.Self.IsAnchor() }

// Services are the mesh's long-lived parts, in start order. Homes also run
// ICE and pull the membership from their anchor.
func (m *Mesh) Services() []supervisor.Service {
	// Anchors pull from the other anchors too: one that was away catches
	// up on what they admitted.
	out := []supervisor.Service{peersService{m}, supervisor.Func("membership-sync", m.syncMembership)}
	if !m.anchorSelf() {
		out = append(out, &iceService{m: m})
	}
	return append(out, supervisor.Func("rtt", m.measureRTT))
}

// Routes registers the control routes every node serves.
func (m *Mesh) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+control.PathMembership, m.handlePush)
	mux.HandleFunc("GET "+control.PathMembership, m.handlePull)
	mux.HandleFunc("POST "+control.PathICE, m.handleICE)
	mux.HandleFunc("POST "+control.PathRelayICE, m.handleRelayICE)
}

// Kick asks for the tunnel's peers to be computed again.
func (m *Mesh) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// peersService makes the tunnel's peers, and ICE's, follow the
// membership, the paths ICE found and the join peers, one change at a
// time. Its start sets the peers once, so that the services after it
// (membership pull, TURN credentials) find the anchors there.
type peersService struct{ m *Mesh }

func (s peersService) Name() string                  { return "peers" }
func (s peersService) Start(context.Context) error   { return s.m.apply() }
func (s peersService) Run(ctx context.Context) error { return s.m.reconcile(ctx) }

func (m *Mesh) reconcile(ctx context.Context) error {
	changes, cancel := m.store.Subscribe()
	defer cancel()
	for {
		var expiry <-chan time.Time // a removed node leaves the quarantine
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		if until := m.quarantineEnd.Load(); until != nil {
			timer.Reset(time.Until(*until) + time.Second)
			expiry = timer.C
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-changes:
		case <-m.kick:
		case <-expiry:
		}
		timer.Stop()
		if err := m.apply(); err != nil {
			return err
		}
	}
}

func (m *Mesh) apply() error {
	mem := m.store.Current()
	m.mu.Lock()
	paths := maps.Clone(m.paths)
	down := maps.Clone(m.anchorsDown)
	mgr := m.nat
	m.mu.Unlock()
	if mgr != nil {
		mgr.SetPeers(icePeers(mem, m.o.Self))
	}
	now := time.Now()
	m.rememberDirect(paths)
	peers := append(wantPeers(mem, m.o.Self, paths, down, ResolveEndpoint), m.o.JoinPeers(now)...)
	if m.anchorSelf() {
		qp, qa, until := quarantined(mem, m.store.Cluster().Networks, now)
		peers = append(peers, qp...)
		m.o.Tunnel.SetQuarantine(qa, control.Port)
		if until.IsZero() {
			m.quarantineEnd.Store(nil)
		} else {
			m.quarantineEnd.Store(&until)
		}
	}
	return m.o.Tunnel.SetPeers(peers)
}

// OnPacket takes what came on the WireGuard socket and is not WireGuard:
// ICE's on a home, STUN binding requests on an anchor.
func (m *Mesh) OnPacket(pkt []byte, from netip.AddrPort) {
	if c := m.natConn.Load(); c != nil {
		c.Deliver(pkt, from)
		return
	}
	if m.anchorSelf() {
		if resp, ok := nat.BindingResponse(pkt, from); ok {
			m.o.Tunnel.SendRaw(resp, from)
		}
	}
}

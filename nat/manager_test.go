package nat

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/turn/v5"

	"github.com/hepto-net/hepto/control"
)

// The tests below run Managers in one process on pion's virtual network:
// each home behind a NAT router of its own, an anchor on the WAN with a
// STUN and TURN server, signalling as JSON through control's decoder.

const (
	anchorIP = "1.2.3.4"
	wgPort   = 51820
)

var (
	coneNAT      = &vnet.NATType{MappingBehavior: vnet.EndpointIndependent, FilteringBehavior: vnet.EndpointAddrPortDependent}
	symmetricNAT = &vnet.NATType{MappingBehavior: vnet.EndpointAddrPortDependent, FilteringBehavior: vnet.EndpointAddrPortDependent}
)

type lab struct {
	t       *testing.T
	wan     *vnet.Router
	turn    *turn.Server
	secret  string
	homes   map[string]*home
	blocked atomic.Bool // drop UDP between homes (not to the anchor)
}

type home struct {
	lab    *lab
	name   string
	public netip.Addr
	net    *vnet.Net
	sock   net.PacketConn
	conn   *PacketConn
	m      *Manager
	data   chan datagram // what is not STUN: WireGuard's share
	paths  chan pathEvent
	reader sync.WaitGroup

	mu   sync.Mutex
	sent []sentMsg
}

type pathEvent struct {
	peer string
	p    Path
}

type sentMsg struct {
	to  string
	at  time.Time
	msg control.ICEMessage
}

// homeSpec is a home's name and its NAT (nil: a public address).
type homeSpec struct {
	name string
	nat  *vnet.NATType
}

func newLab(t *testing.T, specs ...homeSpec) *lab {
	t.Helper()
	quiet := pionLogger(slog.New(slog.DiscardHandler), "vnet")
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "0.0.0.0/0", LoggerFactory: quiet})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, wan: wan, homes: map[string]*home{}, secret: TURNSecret([]byte("test cluster"))}
	wan.AddChunkFilter(func(c vnet.Chunk) bool {
		if !l.blocked.Load() {
			return true
		}
		src, dst := c.SourceAddr().(*net.UDPAddr), c.DestinationAddr().(*net.UDPAddr)
		return src == nil || dst == nil || src.IP.String() == anchorIP || dst.IP.String() == anchorIP
	})
	anchor, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{anchorIP}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(anchor); err != nil {
		t.Fatal(err)
	}
	for i, s := range specs {
		h := &home{lab: l, name: s.name, public: netip.AddrFrom4([4]byte{27, 0, 0, byte(i + 1)}),
			data: make(chan datagram, 64), paths: make(chan pathEvent, 64)}
		if s.nat == nil {
			h.net, err = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{h.public.String()}})
			if err == nil {
				err = wan.AddNet(h.net)
			}
		} else {
			private := fmt.Sprintf("10.0.%d.2", i+1)
			var lan *vnet.Router
			lan, err = vnet.NewRouter(&vnet.RouterConfig{StaticIPs: []string{h.public.String()},
				CIDR: fmt.Sprintf("10.0.%d.0/24", i+1), NATType: s.nat, LoggerFactory: quiet})
			if err == nil {
				h.net, err = vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{private}})
			}
			if err == nil {
				err = lan.AddNet(h.net)
			}
			if err == nil {
				err = wan.AddRouter(lan)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		l.homes[s.name] = h
	}
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	pc, err := anchor.ListenPacket("udp4", fmt.Sprintf("%s:%d", anchorIP, ServerPort))
	if err != nil {
		t.Fatal(err)
	}
	l.turn, err = turn.NewServer(turn.ServerConfig{
		Realm:         "test",
		AuthHandler:   turn.LongTermTURNRESTAuthHandler(l.secret, quiet.NewLogger("turn")),
		LoggerFactory: quiet,
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: pc, RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
			RelayAddress: net.ParseIP(anchorIP), Address: "0.0.0.0", Net: anchor}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range l.homes {
		h.sock, err = h.net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", wgPort))
		if err != nil {
			t.Fatal(err)
		}
		h.conn = NewPacketConn(wgPort, func(b []byte, to netip.AddrPort) error {
			_, err := h.sock.WriteTo(b, net.UDPAddrFromAddrPort(to))
			return err
		})
		h.reader.Add(1)
		go h.read()
	}
	t.Cleanup(l.close)
	return l
}

// read splits the socket as the tunnel does: STUN to ICE, the rest aside.
func (h *home) read() {
	defer h.reader.Done()
	buf := make([]byte, 1<<16)
	for {
		n, from, err := h.sock.ReadFrom(buf)
		if err != nil {
			return
		}
		ap := from.(*net.UDPAddr).AddrPort()
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if stun.IsMessage(buf[:n]) {
			h.conn.Deliver(buf[:n], ap)
			continue
		}
		select {
		case h.data <- datagram{append([]byte(nil), buf[:n]...), ap}:
		default:
		}
	}
}

// close closes the Managers, checks that they left no goroutine, then
// takes the network down.
func (l *lab) close() {
	for _, h := range l.homes {
		if h.m != nil {
			h.m.Close()
		}
	}
	if g := waitICEGoroutines(10 * time.Second); len(g) > 0 {
		l.t.Errorf("%d goroutines left after Close:\n%s", len(g), strings.Join(g, "\n\n"))
	}
	for _, h := range l.homes {
		h.conn.Close()
		h.sock.Close()
		h.reader.Wait()
	}
	l.turn.Close()
	l.wan.Stop()
}

// opts are a home's Manager options; turn adds the anchor's TURN server.
func (h *home) opts(withTURN bool) Options {
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", h.name)
	}
	creds, err := NewCredentials(h.lab.secret, h.name, nil)
	if err != nil {
		h.lab.t.Fatal(err)
	}
	return Options{
		Self: h.name,
		Conn: h.conn,
		Net:  h.net,
		Servers: func() []*stun.URI {
			us := []*stun.URI{{Scheme: stun.SchemeTypeSTUN, Host: anchorIP, Port: ServerPort, Proto: stun.ProtoTypeUDP}}
			if withTURN {
				us = append(us, &stun.URI{Scheme: stun.SchemeTypeTURN, Host: anchorIP, Port: ServerPort, Proto: stun.ProtoTypeUDP,
					Username: creds.Username, Password: creds.Password})
			}
			return us
		},
		Send:   h.send,
		OnPath: func(peer string, p Path) { h.paths <- pathEvent{peer, p} },
		Inject: func(pkt []byte, from netip.AddrPort) {
			select {
			case h.data <- datagram{append([]byte(nil), pkt...), from}:
			default:
			}
		},
		Logger: log,
	}
}

// send carries a message as the daemon does: JSON, checked by control's
// decoder, then handed to the other Manager.
func (h *home) send(ctx context.Context, peer string, msg control.ICEMessage) error {
	h.mu.Lock()
	h.sent = append(h.sent, sentMsg{peer, time.Now(), msg})
	h.mu.Unlock()
	to := h.lab.homes[peer]
	if to == nil || to.m == nil {
		return fmt.Errorf("no node %q", peer)
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	dec, err := control.DecodeICEMessage(strings.NewReader(string(raw)))
	if err != nil {
		return err
	}
	return to.m.Handle(dec)
}

func (h *home) start(o Options) {
	m, err := New(o)
	if err != nil {
		h.lab.t.Fatal(err)
	}
	h.m = m
}

// waitPath waits for a path event for peer that ok accepts.
func (h *home) waitPath(peer string, timeout time.Duration, what string, ok func(Path) bool) Path {
	h.lab.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-h.paths:
			if e.peer == peer && ok(e.p) {
				return e.p
			}
		case <-deadline:
			h.lab.t.Fatalf("%s: no path to %s that is %s after %v", h.name, peer, what, timeout)
		}
	}
}

func isUp(p Path) bool     { return p.Up }
func isDown(p Path) bool   { return !p.Up }
func isDirect(p Path) bool { return p.Up && !p.Relay }

// offers are the sessions h started, in order (messages with credentials).
func (h *home) offers(probe bool) []sentMsg {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []sentMsg
	for _, s := range h.sent {
		if s.msg.Ufrag != "" && s.msg.Probe == probe && (len(out) == 0 || out[len(out)-1].msg.Session != s.msg.Session) {
			out = append(out, s)
		}
	}
	return out
}

// reaches checks that a datagram sent to p.Remote from h's socket arrives
// at to, from h's public address: WireGuard would get through.
func (h *home) reaches(to *home, p Path) {
	t := h.lab.t
	t.Helper()
	if p.Remote.Addr() != to.public {
		t.Fatalf("%s: endpoint for %s is %v, not at its address %v", h.name, to.name, p.Remote, to.public)
	}
	payload := []byte("wireguard from " + h.name)
	for range 10 {
		if _, err := h.sock.WriteTo(payload, net.UDPAddrFromAddrPort(p.Remote)); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-to.data:
			if string(d.b) == string(payload) && d.from.Addr() == h.public {
				return
			}
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("%s: nothing sent to %v reached %s", h.name, p.Remote, to.name)
}

// connect starts a (controlling) and b and waits for their direct path.
func connect(l *lab, a, b *home) (Path, Path) {
	a.m.SetPeers([]Peer{{Name: b.name, Controlling: true}})
	b.m.SetPeers([]Peer{{Name: a.name}})
	pa := a.waitPath(b.name, 15*time.Second, "up", isUp)
	pb := b.waitPath(a.name, 15*time.Second, "up", isUp)
	return pa, pb
}

func TestManagerDirectPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		nat  *vnet.NATType
	}{{"public", nil}, {"cone NAT", coneNAT}} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, homeSpec{"a", tc.nat}, homeSpec{"b", tc.nat})
			a, b := l.homes["a"], l.homes["b"]
			a.start(a.opts(false))
			b.start(b.opts(false))
			// The daemon sets the same peers again on every change: let
			// that run beside the sessions.
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
						a.m.SetPeers([]Peer{{Name: "b", Controlling: true}})
						b.m.SetPeers([]Peer{{Name: "a"}})
					}
				}
			}()
			pa, pb := connect(l, a, b)
			close(stop)
			<-done
			if pa.Relay || pb.Relay {
				t.Fatalf("relayed: %+v %+v", pa, pb)
			}
			if tc.nat == nil && (pa.Remote != netip.AddrPortFrom(b.public, wgPort) || pb.Remote != netip.AddrPortFrom(a.public, wgPort)) {
				t.Fatalf("endpoints %v %v, want the other's socket", pa.Remote, pb.Remote)
			}
			a.reaches(b, pa)
			b.reaches(a, pb)
		})
	}
}

func TestManagerRestart(t *testing.T) {
	l := newLab(t, homeSpec{"a", coneNAT}, homeSpec{"b", coneNAT})
	a, b := l.homes["a"], l.homes["b"]
	a.start(a.opts(false))
	b.start(b.opts(false))
	connect(l, a, b)
	for _, tc := range []struct {
		name  string
		by    *home
		other string
	}{{"controlling side", a, "b"}, {"controlled side", b, "a"}} {
		before := a.offers(false)
		last := before[len(before)-1].msg.Session
		tc.by.m.Restart(tc.other)
		tc.by.waitPath(tc.other, 5*time.Second, "down", isDown)
		pa := a.waitPath("b", 15*time.Second, "up", isUp)
		pb := b.waitPath("a", 15*time.Second, "up", isUp)
		after := a.offers(false)
		if now := after[len(after)-1].msg.Session; now == last {
			t.Fatalf("restart by the %s: path up again without a new session", tc.name)
		}
		a.reaches(b, pa)
		b.reaches(a, pb)
	}
}

func TestManagerRemovedPeer(t *testing.T) {
	l := newLab(t, homeSpec{"a", coneNAT}, homeSpec{"b", coneNAT})
	a, b := l.homes["a"], l.homes["b"]
	a.start(a.opts(false))
	b.start(b.opts(false))
	connect(l, a, b)
	a.m.SetPeers(nil)
	a.waitPath("b", 5*time.Second, "down", isDown)
	a.m.mu.Lock()
	left := len(a.m.peers)
	a.m.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d peers left", left)
	}
	// b asks for a session again: a no longer runs ICE with it.
	if err := a.m.Handle(control.ICEMessage{From: "b", Restart: true}); err == nil {
		t.Fatal("a removed peer's restart accepted")
	}
}

func TestManagerRefusesBadSignalling(t *testing.T) {
	l := newLab(t, homeSpec{"a", coneNAT}, homeSpec{"b", coneNAT})
	a, b := l.homes["a"], l.homes["b"]
	a.start(a.opts(false))
	b.start(b.opts(false))
	connect(l, a, b)
	bad := map[string]control.ICEMessage{
		"from a stranger":           {From: "mallory", Session: 1, Ufrag: "ufrag", Pwd: "pwd"},
		"restart of the controlled": {From: "a", Restart: true},
		"malformed candidate":       {From: "a", Session: 1 << 62, Ufrag: "ufrag", Pwd: "pwd", Candidates: []string{"not a candidate"}},
	}
	for name, msg := range bad {
		if err := b.m.Handle(msg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// None of them disturbed the path.
	select {
	case e := <-b.paths:
		t.Fatalf("path changed: %+v", e)
	case <-time.After(500 * time.Millisecond):
	}
	b.m.mu.Lock()
	up := b.m.peers["a"].path.Up
	b.m.mu.Unlock()
	if !up {
		t.Fatal("path down after refused messages")
	}
}

// iceGoroutines lists the goroutines of Managers and their ICE agents.
func iceGoroutines() []string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "pion/ice/") || strings.Contains(g, "pion/turn/v5/internal/client") ||
			strings.Contains(g, "hepto/nat.(*Manager)") || strings.Contains(g, "hepto/nat.(*session)") {
			out = append(out, g)
		}
	}
	return out
}

// waitICEGoroutines waits for the goroutines of Managers to end, and
// returns those still there after timeout.
func waitICEGoroutines(timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		g := iceGoroutines()
		if len(g) == 0 || time.Now().After(deadline) {
			return g
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestManagerCloseLeavesNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		connect bool
	}{{"connected", true}, {"mid-session", false}} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, homeSpec{"a", coneNAT}, homeSpec{"b", symmetricNAT})
			a, b := l.homes["a"], l.homes["b"]
			if g := iceGoroutines(); len(g) > 0 {
				t.Fatalf("goroutines before the test:\n%s", strings.Join(g, "\n\n"))
			}
			a.start(a.opts(true))
			b.start(b.opts(true))
			if tc.connect {
				connect(l, a, b)
			} else {
				a.m.SetPeers([]Peer{{Name: "b", Controlling: true}})
				b.m.SetPeers([]Peer{{Name: "a"}})
				time.Sleep(100 * time.Millisecond)
			}
			a.m.Close()
			b.m.Close()
			if g := waitICEGoroutines(10 * time.Second); len(g) > 0 {
				t.Fatalf("%d goroutines left after Close:\n%s", len(g), strings.Join(g, "\n\n"))
			}
			if err := a.m.Handle(control.ICEMessage{From: "b", Session: 7, Ufrag: "u", Pwd: "p"}); err == nil {
				t.Fatal("a closed Manager took a new session")
			}
		})
	}
}

func TestManagerRelayGoesDirect(t *testing.T) {
	l := newLab(t, homeSpec{"a", coneNAT}, homeSpec{"b", coneNAT})
	a, b := l.homes["a"], l.homes["b"]
	const retry = 2 * time.Second
	oa, ob := a.opts(true), b.opts(true)
	oa.DirectRetry, ob.DirectRetry = retry, retry
	a.start(oa)
	b.start(ob)
	l.blocked.Store(true)
	pa, pb := connect(l, a, b)
	relayedAt := time.Now()
	if !pa.Relay || !pb.Relay {
		t.Fatalf("direct through a blocked WAN: %+v %+v", pa, pb)
	}
	// Through the relay: the side whose own candidate is the relay sends
	// with Path.Send, the other to the relay's address.
	for _, x := range []struct {
		from, to *home
		p        Path
	}{{a, b, pa}, {b, a, pb}} {
		if x.p.Send == nil {
			continue
		}
		if err := x.p.Send([]byte("through the relay")); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-x.to.data:
			if string(d.b) != "through the relay" {
				t.Fatalf("got %q", d.b)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing came through the relay", x.from.name)
		}
	}
	l.blocked.Store(false)
	pa = a.waitPath("b", retry+15*time.Second, "direct", isDirect)
	pb = b.waitPath("a", 5*time.Second, "direct", isDirect)
	probes := a.offers(true)
	if len(probes) == 0 {
		t.Fatal("direct path without a probe")
	}
	if wait := probes[0].at.Sub(relayedAt); wait < retry-200*time.Millisecond || wait > retry+2*time.Second {
		t.Fatalf("first direct attempt %v after the relayed path, want about %v", wait, retry)
	}
	a.reaches(b, pa)
	b.reaches(a, pb)
}

// Two sessions for one pair can start at once: the controlling side's own
// and one the other side asks for. The newer must win on both sides.
func TestManagerConcurrentStarts(t *testing.T) {
	l := newLab(t, homeSpec{"a", coneNAT}, homeSpec{"b", coneNAT})
	a, b := l.homes["a"], l.homes["b"]
	oa := a.opts(false)
	servers := oa.Servers
	var started atomic.Bool
	oa.Servers = func() []*stun.URI {
		if started.CompareAndSwap(false, true) {
			// The first session is slow to start: b's request for one
			// comes in meanwhile.
			time.Sleep(500 * time.Millisecond)
		}
		return servers()
	}
	a.start(oa)
	b.start(b.opts(false))
	go a.m.SetPeers([]Peer{{Name: "b", Controlling: true}})
	time.Sleep(100 * time.Millisecond)
	b.m.SetPeers([]Peer{{Name: "a"}})
	pa := a.waitPath("b", 10*time.Second, "up", isUp)
	pb := b.waitPath("a", 10*time.Second, "up", isUp)
	a.reaches(b, pa)
	b.reaches(a, pb)
}

// A relayed pair whose direct attempts fail tries again after twice the
// wait each time. Each failed attempt lasts sessionTimeout (20 s).
func TestManagerDirectRetryDoubles(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a direct attempt to time out (20 s)")
	}
	l := newLab(t, homeSpec{"a", coneNAT}, homeSpec{"b", coneNAT})
	a, b := l.homes["a"], l.homes["b"]
	const retry = time.Second
	oa, ob := a.opts(true), b.opts(true)
	oa.DirectRetry, ob.DirectRetry = retry, retry
	a.start(oa)
	b.start(ob)
	l.blocked.Store(true)
	pa, _ := connect(l, a, b)
	if !pa.Relay {
		t.Fatalf("direct through a blocked WAN: %+v", pa)
	}
	deadline := time.Now().Add(retry + sessionTimeout + 2*retry + 5*time.Second)
	var probes []sentMsg
	for len(probes) < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		probes = a.offers(true)
	}
	if len(probes) < 2 {
		t.Fatalf("%d direct attempts", len(probes))
	}
	want := sessionTimeout + 2*retry
	if gap := probes[1].at.Sub(probes[0].at); gap < want-200*time.Millisecond || gap > want+2*time.Second {
		t.Fatalf("second direct attempt %v after the first, want about %v (timeout, then twice %v)", gap, want, retry)
	}
	// Still relayed, and up.
	select {
	case e := <-a.paths:
		t.Fatalf("path changed: %+v", e)
	default:
	}
}

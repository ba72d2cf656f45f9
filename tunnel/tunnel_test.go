package tunnel

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hepto-net/hepto/key"
)

// node is one end of a test overlay.
type node struct {
	h      *helper
	key    key.Private
	v4, v6 string // overlay addresses
	port   uint16
}

func newKey(t *testing.T) key.Private {
	k, err := key.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func startNode(t *testing.T, ns string, n int, netstack bool, env ...string) *node {
	t.Helper()
	nd := &node{h: startHelper(t, ns, env...), key: newKey(t), v4: "10.77.0." + itoa(n), v6: "fd77::" + itoa(n)}
	r := nd.h.do(request{Op: "new", Netstack: netstack, Key: nd.key, Addresses: []string{nd.v4 + "/32", nd.v6 + "/128"}})
	nd.port = r.Port
	if r.Port == 0 {
		t.Fatalf("%s: no listen port", ns)
	}
	return nd
}

func (nd *node) peer(underlay string) helperPeer {
	return helperPeer{Key: nd.key.Public(), Endpoint: underlay + ":" + itoa(int(nd.port)), Allowed: []string{nd.v4 + "/32", nd.v6 + "/128"}}
}

// connect makes a and b peers of each other.
func connect(l pairLab, a, b *node) {
	a.h.do(request{Op: "peers", Peers: []helperPeer{b.peer(l.bIP)}})
	b.h.do(request{Op: "peers", Peers: []helperPeer{a.peer(l.aIP)}})
}

func systemPing(t *testing.T, ns, addr string) {
	t.Helper()
	needTool(t, "ping")
	var out []byte
	var err error
	for range 3 { // the first echo may wait on the handshake
		out, err = execCommand("ip", "netns", "exec", ns, "ping", "-c1", "-W2", addr).CombinedOutput()
		if err == nil {
			return
		}
	}
	t.Fatalf("ping %s from %s: %v\n%s", addr, ns, err, out)
}

func routes(t *testing.T, ns string) string {
	return run(t, "ip", "-n", ns, "route", "show", "proto", itoa(RouteProtocol)) +
		run(t, "ip", "-n", ns, "-6", "route", "show", "proto", itoa(RouteProtocol))
}

func TestTUNPair(t *testing.T) {
	l := newPairLab(t)
	a := startNode(t, l.a, 1, false)
	b := startNode(t, l.b, 2, false)
	connect(l, a, b)

	rs := routes(t, l.a)
	for _, want := range []string{"10.77.0.2 dev hepto0", "fd77::2 dev hepto0"} {
		if !strings.Contains(rs, want) {
			t.Errorf("routes in %s lack %q:\n%s", l.a, want, rs)
		}
	}
	if strings.Contains(rs, "10.77.0.1 ") || strings.Contains(rs, "fd77::1 ") {
		t.Errorf("route for our own address:\n%s", rs)
	}
	if out, _ := execCommand("ip", "netns", "exec", l.a, "cat", "/proc/sys/net/ipv4/conf/hepto0/send_redirects").Output(); strings.TrimSpace(string(out)) != "0" {
		t.Errorf("send_redirects = %q, want 0", out)
	}

	systemPing(t, l.a, b.v4)
	systemPing(t, l.a, b.v6)
	systemPing(t, l.b, a.v4)
	for _, dst := range []string{b.v4, b.v6} {
		r := a.h.do(request{Op: "ping", Addr: dst})
		t.Logf("Ping %s: %v", dst, time.Duration(r.RTT))
	}

	st := a.h.do(request{Op: "stats"}).Stats
	if len(st) != 1 || st[0].PublicKey != b.key.Public() {
		t.Fatalf("stats: %+v", st)
	}
	if st[0].LastHandshake.IsZero() || time.Since(st[0].LastHandshake) > time.Minute {
		t.Errorf("last handshake %v", st[0].LastHandshake)
	}
	if st[0].RxBytes == 0 || st[0].TxBytes == 0 {
		t.Errorf("no bytes counted: %+v", st[0])
	}
	if want := netip.MustParseAddrPort(l.bIP + ":" + itoa(int(b.port))); st[0].Endpoint != want {
		t.Errorf("endpoint %v, want %v", st[0].Endpoint, want)
	}

	a.h.do(request{Op: "close"})
	if out, err := execCommand("ip", "-n", l.a, "link", "show", "hepto0").CombinedOutput(); err == nil {
		t.Errorf("hepto0 still there after Close:\n%s", out)
	}
	if rs := routes(t, l.a); strings.TrimSpace(rs) != "" {
		t.Errorf("routes left after Close:\n%s", rs)
	}
	if out := run(t, "ip", "-n", l.a, "-6", "route"); strings.Contains(out, "hepto0") {
		t.Errorf("IPv6 routes left after Close:\n%s", out)
	}
}

func TestSetPeersRoutes(t *testing.T) {
	needRoot(t)
	ns := newNS(t, labID(), "a")
	a := startNode(t, ns, 1, false)
	b, c := newKey(t).Public(), newKey(t).Public()
	peers := []helperPeer{
		{Key: b, Endpoint: "198.51.100.2:51820", Allowed: []string{"10.77.0.2/32", "fd77::2/128", "10.78.2.0/24"}, Keepalive: 25},
		{Key: c, Allowed: []string{"10.77.0.3/32", "fd77::3/128", "10.78.3.0/24", "10.77.0.1/32"}},
	}
	a.h.do(request{Op: "peers", Peers: peers})
	rs := routes(t, ns)
	for _, want := range []string{"10.77.0.2 ", "10.77.0.3 ", "10.78.2.0/24", "10.78.3.0/24", "fd77::2 ", "fd77::3 "} {
		if !strings.Contains(rs, want) {
			t.Errorf("missing route %q:\n%s", want, rs)
		}
	}
	if strings.Contains(rs, "10.77.0.1 ") {
		t.Errorf("route for our own address:\n%s", rs)
	}
	if st := a.h.do(request{Op: "stats"}).Stats; len(st) != 2 {
		t.Fatalf("want 2 peers, got %+v", st)
	}

	a.h.do(request{Op: "peers", Peers: peers[:1]})
	rs = routes(t, ns)
	for _, gone := range []string{"10.77.0.3 ", "10.78.3.0/24", "fd77::3 "} {
		if strings.Contains(rs, gone) {
			t.Errorf("route %q not removed:\n%s", gone, rs)
		}
	}
	for _, want := range []string{"10.77.0.2 ", "10.78.2.0/24", "fd77::2 "} {
		if !strings.Contains(rs, want) {
			t.Errorf("route %q lost:\n%s", want, rs)
		}
	}
	st := a.h.do(request{Op: "stats"}).Stats
	if len(st) != 1 || st[0].PublicKey != b {
		t.Fatalf("want only peer b, got %+v", st)
	}

	a.h.do(request{Op: "peers"})
	if rs := routes(t, ns); strings.TrimSpace(rs) != "" {
		t.Errorf("routes left with no peers:\n%s", rs)
	}
}

// stunRequest is a STUN binding request with a random transaction ID.
func stunRequest(id byte) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], 0x0001)
	binary.BigEndian.PutUint32(b[4:], stunMagicCookie)
	for i := 8; i < 20; i++ {
		b[i] = id
	}
	return b
}

func TestSharedSocket(t *testing.T) {
	l := newPairLab(t)
	a := startNode(t, l.a, 1, false)
	b := startNode(t, l.b, 2, false)
	connect(l, a, b)
	systemPing(t, l.b, a.v4)

	check := func(port uint16) {
		t.Helper()
		to := l.aIP + ":" + itoa(int(port))
		udpPort := b.h.do(request{Op: "udplisten"}).Port
		from := l.bIP + ":" + itoa(int(udpPort))

		// Not WireGuard, not STUN: dropped, no event.
		b.h.do(request{Op: "udpsend", Addr: to, Data: []byte{0xff, 1, 2, 3, 4, 5, 6, 7}})
		req := stunRequest(7)
		b.h.do(request{Op: "udpsend", Addr: to, Data: req})
		ev, ok := a.h.event(3 * time.Second)
		if !ok {
			t.Fatal("STUN request did not reach OnPacket")
		}
		if !bytes.Equal(ev.Data, req) || ev.From != from {
			t.Fatalf("OnPacket got %x from %s, want %x from %s", ev.Data, ev.From, req, from)
		}
		cd := []byte{0x40, 0x01, 0x00, 0x04, 1, 2, 3, 4}
		b.h.do(request{Op: "udpsend", Addr: to, Data: cd})
		if ev, ok := a.h.event(3 * time.Second); !ok || !bytes.Equal(ev.Data, cd) {
			t.Fatalf("ChannelData: got %x (%v)", ev.Data, ok)
		}

		reply := stunRequest(9)
		reply[0] = 0x01 // binding success response (0x0101)
		a.h.do(request{Op: "sendraw", Addr: from, Data: reply})
		got := b.h.do(request{Op: "udprecv"})
		if !bytes.Equal(got.Data, reply) || got.From != to {
			t.Fatalf("SendRaw: got %x from %s, want %x from %s", got.Data, got.From, reply, to)
		}
		// WireGuard still flows alongside.
		systemPing(t, l.a, b.v4)
		systemPing(t, l.b, a.v6)
	}
	check(a.port)

	// The device re-opens its bind on a port change: the classifier follows.
	newPort := a.h.do(request{Op: "setport", Port: 0}).Port
	if newPort == a.port || newPort == 0 {
		t.Logf("port unchanged (%d): asking for a fixed one", newPort)
		newPort = a.h.do(request{Op: "setport", Port: 40123}).Port
	}
	a.port = newPort
	b.h.do(request{Op: "peers", Peers: []helperPeer{a.peer(l.aIP)}})
	check(a.port)
	select {
	case ev := <-a.h.events:
		t.Errorf("unexpected OnPacket: %x", ev.Data)
	default:
	}
}

func TestNetstackSOCKS(t *testing.T) {
	l := newPairLab(t)
	a := startNode(t, l.a, 1, true) // netstack, no TUN
	b := startNode(t, l.b, 2, false)
	connect(l, a, b)
	if out, err := execCommand("ip", "-n", l.a, "link", "show", "hepto0").CombinedOutput(); err == nil {
		t.Fatalf("netstack mode created a TUN:\n%s", out)
	}

	b.h.do(request{Op: "serve", Addr: b.v4 + ":8080"})
	b.h.do(request{Op: "serve", Addr: "[" + b.v6 + "]:8080"})
	a.h.do(request{Op: "socks", Addr: "127.0.0.1:1080"})
	for _, dst := range []string{b.v4 + ":8080", "[" + b.v6 + "]:8080"} {
		r := a.h.do(request{Op: "get", Addr: dst, Data: []byte("127.0.0.1:1080")})
		if want := "hello from " + dst; string(r.Data) != want {
			t.Errorf("GET %s through SOCKS5: %q, want %q", dst, r.Data, want)
		}
	}
	// The other way: a listener on the netstack, reached by the kernel side.
	a.h.do(request{Op: "serve", Addr: a.v4 + ":8081"})
	if r := b.h.do(request{Op: "get", Addr: a.v4 + ":8081"}); string(r.Data) != "hello from "+a.v4+":8081" {
		t.Errorf("GET netstack listener: %q", r.Data)
	}
	systemPing(t, l.b, a.v4)
	systemPing(t, l.b, a.v6)
	for _, dst := range []string{b.v4, b.v6} {
		r := a.h.do(request{Op: "ping", Addr: dst})
		t.Logf("netstack Ping %s: %v", dst, time.Duration(r.RTT))
	}
	if st := a.h.do(request{Op: "stats"}).Stats; len(st) != 1 || st[0].LastHandshake.IsZero() {
		t.Errorf("netstack stats: %+v", st)
	}
}

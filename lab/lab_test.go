package lab_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
)

func TestMachineReachesInternetFromPublicIP(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	anchor, err := l.AddPublicHost("anchor")
	if err != nil {
		t.Fatal(err)
	}
	home, err := l.AddHome("a", lab.HomeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := home.Machines[0]
	if m.IPv4 != netip.MustParseAddr("192.168.1.2") {
		t.Errorf("machine address %v, want 192.168.1.2", m.IPv4)
	}
	t.Logf("ping %s → %s: %v", m.Name, anchor.IPv4, minRTT(t, m, anchor.IPv4, 3))

	exe, _ := os.Executable()
	echo, log := startHelper(t, anchor, "udpecho", ":7000")
	rx0, tx0, err := l.UplinkCounters(home)
	if err != nil {
		t.Fatal(err)
	}
	c := listen(t, m, ":0")
	seen, err := seenFrom(c, netip.AddrPortFrom(anchor.IPv4, 7000))
	if err != nil {
		t.Fatal(err)
	}
	// One datagram out, one back: Ethernet 14 + IP 20 + UDP 8 + payload each.
	rx1, tx1, err := l.UplinkCounters(home)
	if err != nil {
		t.Fatal(err)
	}
	if rx1-rx0 < 42+uint64(len(seen.String())) || tx1-tx0 < 42+8 {
		t.Errorf("uplink counters grew by %d received, %d sent", rx1-rx0, tx1-tx0)
	}
	if seen.Addr() != home.PublicIP {
		t.Errorf("anchor sees %v, want the box's public address %v", seen, home.PublicIP)
	}

	// The helper exits cleanly on SIGTERM; Stop reports it, and its log kept the output.
	code, err := echo.Stop(syscall.SIGTERM, 2*time.Second)
	if err != nil || code != 0 {
		t.Errorf("stop echo: code %d, %v", code, err)
	}
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "bye") {
		t.Errorf("echo log %q lacks its last words", b)
	}
	if out, err := m.Run(t.Context(), exe, "lab-helper", "nonsense"); err == nil || !strings.Contains(err.Error(), "unknown helper") {
		t.Errorf("Run of a failing command: %q, %v", out, err)
	}
}

func TestNATMapping(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	s1, err := l.AddPublicHost("stun1")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := l.AddPublicHost("stun2")
	if err != nil {
		t.Fatal(err)
	}
	e1, e2 := startEcho(t, s1), startEcho(t, s2)
	for _, nat := range []lab.NAT{lab.EIM, lab.Symmetric} {
		t.Run(nat.String(), func(t *testing.T) {
			home, err := l.AddHome("h-"+nat.String(), lab.HomeOptions{NAT: nat})
			if err != nil {
				t.Fatal(err)
			}
			c := listen(t, home.Machines[0], ":40000")
			m1, err := seenFrom(c, e1)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := seenFrom(c, e2)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("socket :40000 seen as %v by %v and %v by %v", m1, e1, m2, e2)
			if m1.Addr() != home.PublicIP || m2.Addr() != home.PublicIP {
				t.Errorf("seen from %v and %v, want %v", m1.Addr(), m2.Addr(), home.PublicIP)
			}
			same := m1.Port() == m2.Port()
			if nat == lab.EIM && !same {
				t.Errorf("EIM NAT mapped one socket to ports %d and %d", m1.Port(), m2.Port())
			}
			if nat == lab.Symmetric && same {
				t.Errorf("symmetric NAT kept port %d for two destinations", m1.Port())
			}
		})
	}
}

func TestUnsolicitedInboundDropped(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	outside, err := l.AddPublicHost("outside")
	if err != nil {
		t.Fatal(err)
	}
	home, err := l.AddHome("a", lab.HomeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := listen(t, home.Machines[0], ":4000")
	out := listen(t, outside, ":5000")
	send := func(to netip.AddrPort) {
		t.Helper()
		if _, err := out.WriteTo([]byte("knock "+to.String()), net.UDPAddrFromAddrPort(to)); err != nil {
			t.Fatal(err)
		}
	}
	send(netip.AddrPortFrom(home.PublicIP, 4000))
	if msg, ok := received(in, 300*time.Millisecond); ok {
		t.Fatalf("unsolicited packet reached the LAN: %q", msg)
	}
	drops := inputDrops(t, home.Box)
	if drops == 0 {
		t.Error("the box's INPUT rule dropped nothing")
	}

	// The same path works once the machine has opened it: the test can see a packet.
	if _, err := in.WriteTo([]byte("hello"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(outside.IPv4, 5000))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	out.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, from, err := out.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	mapped := from.(*net.UDPAddr).AddrPort()
	send(netip.AddrPortFrom(mapped.Addr().Unmap(), mapped.Port()))
	if msg, ok := received(in, 2*time.Second); !ok {
		t.Fatal("reply through the opened mapping was lost")
	} else {
		t.Logf("through mapping %v: %q", mapped, msg)
	}
	// Another port stays closed.
	send(netip.AddrPortFrom(home.PublicIP, mapped.Port()+1))
	if msg, ok := received(in, 300*time.Millisecond); ok {
		t.Fatalf("unsolicited packet reached the LAN: %q", msg)
	}
}

// inputDrops reads the packet count of the box's INPUT DROP rule.
func inputDrops(t *testing.T, box *lab.Host) int {
	t.Helper()
	out, err := box.Run(t.Context(), "iptables", "-w", "-n", "-v", "-x", "-L", "INPUT")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "DROP" {
			n, _ := strconv.Atoi(f[0])
			return n
		}
	}
	t.Fatalf("no DROP rule in INPUT:\n%s", out)
	return 0
}

func TestHolePunchBetweenHomes(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	stun, err := l.AddPublicHost("stun")
	if err != nil {
		t.Fatal(err)
	}
	server := startEcho(t, stun)
	var conns [2]net.PacketConn
	var mapped [2]netip.AddrPort
	for i, name := range []string{"a", "b"} {
		home, err := l.AddHome(name, lab.HomeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = listen(t, home.Machines[0], ":41641")
		if mapped[i], err = seenFrom(conns[i], server); err != nil {
			t.Fatal(err)
		}
	}
	// Both send at once, as ICE does; the first packets die on the other box.
	for round := range 10 {
		for i := range 2 {
			conns[i].WriteTo([]byte("punch"), net.UDPAddrFromAddrPort(mapped[1-i]))
		}
		ok := 0
		for i := range 2 {
			if _, got := received(conns[i], 200*time.Millisecond); got {
				ok++
			}
		}
		if ok == 2 {
			t.Logf("hole punched between %v and %v in %d rounds", mapped[0], mapped[1], round+1)
			return
		}
	}
	t.Fatalf("no hole punched between %v and %v", mapped[0], mapped[1])
}

func TestHomesShareLANPrefix(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	anchor, err := l.AddPublicHost("anchor")
	if err != nil {
		t.Fatal(err)
	}
	server := startEcho(t, anchor)
	var homes []*lab.Home
	for _, name := range []string{"a", "b"} {
		h, err := l.AddHome(name, lab.HomeOptions{Machines: 2})
		if err != nil {
			t.Fatal(err)
		}
		homes = append(homes, h)
	}
	if homes[0].PublicIP == homes[1].PublicIP {
		t.Fatalf("homes share public address %v", homes[0].PublicIP)
	}
	for _, h := range homes {
		for _, m := range h.Machines {
			if !lab.LANPrefix.Contains(m.IPv4) {
				t.Errorf("%s: %v outside %v", m.Name, m.IPv4, lab.LANPrefix)
			}
			seen, err := seenFrom(listen(t, m, ":0"), server)
			if err != nil {
				t.Fatalf("%s (%v): %v", m.Name, m.IPv4, err)
			}
			if seen.Addr() != h.PublicIP {
				t.Errorf("%s seen from %v, want %v", m.Name, seen.Addr(), h.PublicIP)
			}
		}
		minRTT(t, h.Machines[0], h.Machines[1].IPv4, 1)
	}
}

func TestUplinkDelayAndLoss(t *testing.T) {
	for _, shaping := range []lab.Shaping{lab.ShapeWire, lab.ShapeNetem} {
		t.Run(shaping.String(), func(t *testing.T) {
			lab.NeedRoot(t)
			l, err := lab.New(t.Context(), lab.Options{Shaping: shaping, Logger: testLogger(t)})
			if errors.Is(err, lab.ErrNoNetem) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			testDelayAndLoss(t, l)
		})
	}
}

func testDelayAndLoss(t *testing.T, l *lab.Lab) {
	anchor, err := l.AddPublicHost("anchor")
	if err != nil {
		t.Fatal(err)
	}
	home, err := l.AddHome("a", lab.HomeOptions{Delay: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	m := home.Machines[0]
	// 50 ms each way.
	if rtt := minRTT(t, m, anchor.IPv4, 3); rtt < 100*time.Millisecond || rtt > 180*time.Millisecond {
		t.Errorf("RTT with 50 ms on the uplink: %v, want 100–180 ms", rtt)
	} else {
		t.Logf("RTT with 50 ms: %v", rtt)
	}
	if err := home.SetDelay(0, 0); err != nil {
		t.Fatal(err)
	}
	if rtt := minRTT(t, m, anchor.IPv4, 3); rtt > 20*time.Millisecond {
		t.Errorf("RTT without delay: %v, want under 20 ms", rtt)
	} else {
		t.Logf("RTT without delay: %v", rtt)
	}

	if err := home.SetDelay(0, 100); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if rtt, err := m.Ping(ctx, anchor.IPv4); err == nil {
		t.Errorf("ping through 100%% loss came back in %v", rtt)
	}
	// 50% each way: a quarter of round trips survive.
	if err := home.SetDelay(0, 50); err != nil {
		t.Fatal(err)
	}
	server := startEcho(t, anchor)
	c := listen(t, m, ":0")
	const n = 200
	got := 0
	buf := make([]byte, 100)
	for range n {
		c.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(server))
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, _, err := c.ReadFrom(buf); err == nil {
			got++
		}
	}
	t.Logf("50%% loss each way: %d/%d round trips", got, n)
	if got < n/10 || got > n/2 {
		t.Errorf("50%% loss each way: %d/%d round trips, want about %d", got, n, n/4)
	}
}

func TestPlainUplink(t *testing.T) {
	l := lab.ForTest(t, lab.Options{Shaping: lab.ShapeNone})
	anchor, err := l.AddPublicHost("anchor")
	if err != nil {
		t.Fatal(err)
	}
	server := startEcho(t, anchor)
	home, err := l.AddHome("a", lab.HomeOptions{NAT: lab.Symmetric})
	if err != nil {
		t.Fatal(err)
	}
	seen, err := seenFrom(listen(t, home.Machines[0], ":0"), server)
	if err != nil {
		t.Fatal(err)
	}
	if seen.Addr() != home.PublicIP {
		t.Errorf("seen from %v, want %v", seen.Addr(), home.PublicIP)
	}
	if err := home.SetDelay(10*time.Millisecond, 0); err == nil {
		t.Error("a plain uplink took a delay")
	}
}

func TestRenumber(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	anchor, err := l.AddPublicHost("anchor")
	if err != nil {
		t.Fatal(err)
	}
	server := startEcho(t, anchor)
	home, err := l.AddHome("a", lab.HomeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := listen(t, home.Machines[0], ":40000")
	before, err := seenFrom(c, server)
	if err != nil {
		t.Fatal(err)
	}
	old := home.PublicIP
	fresh, err := home.Renumber()
	if err != nil {
		t.Fatal(err)
	}
	if fresh == old || home.PublicIP != fresh {
		t.Fatalf("renumber: %v → %v (PublicIP %v)", old, fresh, home.PublicIP)
	}
	// The same socket goes on, from the new address.
	after, err := seenFrom(c, server)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("socket seen as %v, then %v", before, after)
	if before.Addr() != old || after.Addr() != fresh {
		t.Errorf("seen as %v then %v, want %v then %v", before, after, old, fresh)
	}
}

func TestIPv6Home(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	anchor, err := l.AddPublicHost("anchor")
	if err != nil {
		t.Fatal(err)
	}
	home, err := l.AddHome("a", lab.HomeOptions{IPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	m := home.Machines[0]
	if !m.IPv6.IsValid() {
		t.Fatal("machine has no IPv6 address")
	}
	minRTT(t, m, anchor.IPv6, 2)
	server := startEcho(t, anchor)
	c := listen(t, m, ":40000")
	seen, err := seenFrom(c, netip.AddrPortFrom(anchor.IPv6, server.Port()))
	if err != nil {
		t.Fatal(err)
	}
	if seen != netip.AddrPortFrom(m.IPv6, 40000) {
		t.Errorf("seen as %v, want %v: no NAT on IPv6", seen, netip.AddrPortFrom(m.IPv6, 40000))
	}
	// Unsolicited inbound IPv6 is dropped by the box's firewall.
	out := listen(t, anchor, ":5000")
	out.WriteTo([]byte("knock"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(m.IPv6, 40001)))
	in := listen(t, m, ":40001")
	out.WriteTo([]byte("knock"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(m.IPv6, 40001)))
	if msg, ok := received(in, 300*time.Millisecond); ok {
		t.Fatalf("unsolicited IPv6 packet reached the machine: %q", msg)
	}
}

func TestCloseLeavesNothing(t *testing.T) {
	lab.NeedRoot(t)
	l, err := lab.New(t.Context(), lab.Options{Grace: 300 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if _, err := l.AddPublicHost("anchor"); err != nil {
		t.Fatal(err)
	}
	home, err := l.AddHome("a", lab.HomeOptions{Machines: 2, Delay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stubborn, _ := startHelper(t, home.Machines[0], "stubborn")
	sleeper := home.Machines[1].Command(t.Context(), "sleep", "3600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	if netns := ours(t, l.Prefix); len(netns) != 5 {
		t.Fatalf("namespaces %v, want internet, anchor, a-box, a-1, a-2", netns)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if left := ours(t, l.Prefix); len(left) > 0 {
		t.Errorf("namespaces left after Close: %v", left)
	}
	select {
	case <-stubborn.Done():
	case <-time.After(time.Second):
		t.Error("process ignoring SIGTERM survived Close")
	}
	if code, _ := stubborn.Wait(); code != 128+int(syscall.SIGKILL) {
		t.Errorf("stubborn process exit code %d, want SIGKILL's", code)
	}
	if err := sleeper.Wait(); err == nil {
		t.Error("sleep ended cleanly: Close did not kill it")
	}
	if _, err := l.AddPublicHost("late"); err == nil {
		t.Error("AddPublicHost works on a closed lab")
	}
}

func TestSweep(t *testing.T) {
	l := lab.ForTest(t, lab.Options{})
	if _, err := l.AddHome("a", lab.HomeOptions{}); err != nil {
		t.Fatal(err)
	}
	other := lab.ForTest(t, lab.Options{})
	if other.Prefix == l.Prefix {
		t.Fatalf("two labs share prefix %s", l.Prefix)
	}
	if err := lab.Sweep(l.Prefix); err != nil {
		t.Fatal(err)
	}
	if left := ours(t, l.Prefix); len(left) > 0 {
		t.Errorf("namespaces left after Sweep: %v", left)
	}
	if len(ours(t, other.Prefix)) == 0 {
		t.Error("Sweep took another lab's namespaces")
	}
	if err := lab.Sweep("hl"); err == nil {
		t.Error("Sweep accepted a prefix that matches every lab")
	}
}

func TestStaleLab(t *testing.T) {
	live := lab.ForTest(t, lab.Options{})
	exe, _ := os.Executable()
	out, err := exec.Command(exe, "lab-helper", "crash").Output()
	if err != nil {
		t.Fatalf("crash helper: %v", err)
	}
	prefix := strings.TrimSpace(string(out))
	t.Cleanup(func() { lab.Sweep(prefix) })
	if len(ours(t, prefix)) != 2 {
		t.Fatalf("crashed lab %s left %v", prefix, ours(t, prefix))
	}
	// Its process died with it.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		pids, err := exec.Command("ip", "netns", "pids", prefix+"-vps").Output()
		if err == nil && len(strings.TrimSpace(string(pids))) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes outlive the lab's process: %s %v", pids, err)
		}
	}
	if !lab.Stale(prefix) {
		t.Error("crashed lab not stale")
	}
	if lab.Stale(live.Prefix) {
		t.Error("live lab stale")
	}
	if err := lab.Sweep(prefix); err != nil {
		t.Fatal(err)
	}
	if left := ours(t, prefix); len(left) > 0 {
		t.Errorf("left after Sweep: %v", left)
	}
}

// ours lists, with `ip netns list`, the namespaces of the lab with prefix.
func ours(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			names = append(names, f[0])
		}
	}
	return names
}

package netpol

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"sigs.k8s.io/knftables"
)

// lab is two "pods" routed through a "node", as hepto's pods are, each a
// network namespace: a (10.200.1.2, fd00:1::2) and b (10.200.2.2,
// fd00:2::2), b listening on 80 and 81, the node on 10.200.1.1:81.
type lab struct {
	node, a, b string
	aIPs, bIPs []netip.Addr
}

func newLab(t *testing.T) *lab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped without root: creates network namespaces and nftables tables")
	}
	if testing.Short() {
		t.Skip("skipped in -short mode: creates network namespaces")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (make deps installs it): %v", tool, err)
		}
	}
	id := make([]byte, 3)
	rand.Read(id)
	pfx := "hnp" + hex.EncodeToString(id)
	l := &lab{node: newNS(t, pfx+"-node"), a: newNS(t, pfx+"-a"), b: newNS(t, pfx+"-b"),
		aIPs: []netip.Addr{netip.MustParseAddr("10.200.1.2"), netip.MustParseAddr("fd00:1::2")},
		bIPs: []netip.Addr{netip.MustParseAddr("10.200.2.2"), netip.MustParseAddr("fd00:2::2")}}
	for i, pod := range []string{l.a, l.b} {
		n := string(rune('1' + i))
		veth := pfx + n
		sh(t, "ip", "link", "add", veth, "netns", l.node, "type", "veth", "peer", "name", "eth0", "netns", pod)
		sh(t, "ip", "-n", l.node, "addr", "add", "10.200."+n+".1/24", "dev", veth)
		sh(t, "ip", "-n", l.node, "addr", "add", "fd00:"+n+"::1/64", "dev", veth, "nodad")
		sh(t, "ip", "-n", l.node, "link", "set", veth, "up")
		sh(t, "ip", "-n", pod, "addr", "add", "10.200."+n+".2/24", "dev", "eth0")
		sh(t, "ip", "-n", pod, "addr", "add", "fd00:"+n+"::2/64", "dev", "eth0", "nodad")
		sh(t, "ip", "-n", pod, "link", "set", "eth0", "up")
		sh(t, "ip", "-n", pod, "route", "add", "default", "via", "10.200."+n+".1")
		sh(t, "ip", "-n", pod, "-6", "route", "add", "default", "via", "fd00:"+n+"::1")
	}
	sh(t, "ip", "netns", "exec", l.node, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	for _, ip := range []string{"10.200.2.2", "fd00:2::2"} {
		for _, port := range []string{"80", "81"} {
			listen(t, l.b, net.JoinHostPort(ip, port))
		}
	}
	listen(t, l.node, "10.200.1.1:81")
	// The links are up once both families connect (IPv6 waits for its
	// link-local addresses).
	for _, to := range []string{"10.200.2.2:81", "[fd00:2::2]:81"} {
		deadline := time.Now().Add(5 * time.Second)
		for !dial(l.a, to) {
			if time.Now().After(deadline) {
				t.Fatalf("no table: a → %s does not connect", to)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return l
}

// apply writes p's table in the node with the real nft.
func (l *lab) apply(t *testing.T, p Plan) {
	t.Helper()
	nft := knftables.NewFake(knftables.InetFamily, Table)
	tx := nft.NewTransaction()
	write(tx, p)
	cmd := exec.Command("ip", "netns", "exec", l.node, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(tx.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s\n%s", err, out, tx.String())
	}
}

// The kernel test: the node's table written by the real nft, real TCP
// between the pods.
func TestKernel(t *testing.T) {
	l := newLab(t)
	a, aIPs, bIPs := l.a, l.aIPs, l.bIPs
	apply := func(p Plan) { t.Helper(); l.apply(t, p) }
	check := func(what, to string, want bool) {
		t.Helper()
		if got := dial(a, to); got != want {
			t.Errorf("%s: a → %s connects: %v, want %v", what, to, got, want)
		}
	}
	apply(Plan{})
	check("no isolated pod", "10.200.2.2:81", true)

	// An open connection outlives the policy that would refuse it.
	var open net.Conn
	if err := ns.WithNetNSPath("/run/netns/"+a, func(ns.NetNS) error {
		var err error
		open, err = net.DialTimeout("tcp", "10.200.2.2:81", time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	apply(Plan{Pods: []PodRules{{Key: "b/b", IPs: bIPs, Ingress: &Rules{Clauses: []Clause{
		{Peers: hosts("10.200.1.2", "fd00:1::2"), Proto: "tcp", Port: 80, EndPort: 80},
	}}}}})
	check("b admits a on 80", "10.200.2.2:80", true)
	check("b admits a on 80 only", "10.200.2.2:81", false)
	check("b admits a on 80, over IPv6", "[fd00:2::2]:80", true)
	check("b admits a on 80 only, over IPv6", "[fd00:2::2]:81", false)
	if _, err := open.Write([]byte("still there")); err != nil {
		t.Errorf("a connection opened before the policy: %v", err)
	}

	apply(Plan{Pods: []PodRules{{Key: "b/b", IPs: bIPs, Ingress: &Rules{Clauses: []Clause{
		{Peers: []netip.Prefix{netip.MustParsePrefix("10.200.0.0/16")}, Proto: "tcp", Port: 79, EndPort: 81},
	}}}}})
	check("b admits 10.200/16 on 79-81", "10.200.2.2:81", true)
	check("b admits no IPv6 peer", "[fd00:2::2]:81", false)

	apply(Plan{Pods: []PodRules{{Key: "a/a", IPs: aIPs, Egress: &Rules{Clauses: []Clause{
		{Any: true, Proto: "tcp", Port: 80, EndPort: 80},
	}}}}})
	check("a may send to port 80 only", "10.200.2.2:80", true)
	check("a may send to port 80 only", "10.200.2.2:81", false)
	check("a may not reach its node's port 81", "10.200.1.1:81", false)

	// Both ends: a's egress allows, b's ingress refuses.
	apply(Plan{Pods: []PodRules{
		{Key: "a/a", IPs: aIPs, Egress: &Rules{Clauses: []Clause{{Any: true}}}},
		{Key: "b/b", IPs: bIPs, Ingress: &Rules{}},
	}})
	check("a may send anywhere, b admits nobody", "10.200.2.2:80", false)
	check("a may send anywhere, its node admits it", "10.200.1.1:81", true)
}

func newNS(t *testing.T, name string) string {
	t.Helper()
	sh(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("delete namespace %s: %v %s", name, err, out)
		}
	})
	sh(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// listen accepts connections on addr in netns name until the test ends.
func listen(t *testing.T, name, addr string) {
	t.Helper()
	var ln net.Listener
	if err := ns.WithNetNSPath("/run/netns/"+name, func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 64)
				for {
					if _, err := c.Read(buf); err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
}

// dial tells whether a TCP connection from netns name to addr opens.
func dial(name, addr string) bool {
	ok := false
	_ = ns.WithNetNSPath("/run/netns/"+name, func(ns.NetNS) error {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			ok = true
			c.Close()
		}
		return nil
	})
	return ok
}

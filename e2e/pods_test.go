package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hepto-net/hepto/cni/ipam"
	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/lab/cluster"
)

var (
	refOnce sync.Once
	refDir  string
	refErr  error
)

// refPlugins builds the reference CNI plugins the tests chain after
// hepto-cni, from the module proxy, once per run.
func refPlugins(t *testing.T) string {
	t.Helper()
	refOnce.Do(func() {
		refDir = filepath.Join(binDir, "ref")
		out, err := exec.Command("go", "build", "-o", refDir+"/",
			"github.com/containernetworking/plugins/plugins/meta/portmap",
			"github.com/containernetworking/plugins/plugins/meta/bandwidth").CombinedOutput()
		if err != nil {
			refErr = fmt.Errorf("build reference plugins: %w: %s", err, out)
		}
	})
	if refErr != nil {
		t.Fatal(refErr)
	}
	return refDir
}

// conflist is the CNI configuration the node's daemon wrote.
func (n *node) conflist() map[string]any {
	n.w.t.Helper()
	var list map[string]any
	eventually(n.w.t, 20*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(n.CNI, "10-hepto.conflist"))
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &list)
	})
	return list
}

// podCIDRs are the node's pod ranges, from its conflist.
func (n *node) podCIDRs() []netip.Prefix {
	n.w.t.Helper()
	var out []netip.Prefix
	plugin := n.conflist()["plugins"].([]any)[0].(map[string]any)
	for _, p := range plugin["podCIDRs"].([]any) {
		out = append(out, netip.MustParsePrefix(p.(string)))
	}
	return out
}

// runtime is a container runtime on the node, with the daemon's
// configuration and the plugins of chain after hepto-cni.
func (n *node) runtime(chain ...map[string]any) *lab.Runtime {
	t := n.w.t
	t.Helper()
	list := n.conflist()
	path := []string{filepath.Dir(cniBin)}
	if len(chain) > 0 {
		path = append(path, refPlugins(t))
		for _, c := range chain {
			list["plugins"] = append(list["plugins"].([]any), c)
		}
	}
	b, _ := json.Marshal(list)
	l, err := libcni.ConfListFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return lab.NewRuntime(n.Host, l, path, t.TempDir())
}

// pod is a pod namespace attached to a node.
type pod struct {
	*lab.Host
	att lab.Attachment
	res *current.Result
	ips []netip.Addr // IPv4, IPv6
}

func (w *world) pod(rt *lab.Runtime, name string, caps map[string]any) *pod {
	w.t.Helper()
	h, err := w.lab.AddNamespace(name)
	if err != nil {
		w.t.Fatal(err)
	}
	p := &pod{Host: h, att: lab.Attachment{ContainerID: "id-" + name, Pod: h, CapabilityArgs: caps}}
	res, err := rt.Add(w.ctx, p.att)
	if err != nil {
		w.t.Fatalf("ADD %s: %v", name, err)
	}
	p.res, p.ips = res, resultIPs(w.t, res)
	w.t.Logf("pod %s on %s: %v", name, rt.Host.Name, p.ips)
	return p
}

func resultIPs(t *testing.T, res *current.Result) []netip.Addr {
	t.Helper()
	var ips []netip.Addr
	for _, c := range res.IPs {
		a, _ := netip.AddrFromSlice(c.Address.IP)
		ips = append(ips, a.Unmap())
	}
	if len(ips) != 2 || !ips[0].Is4() || !ips[1].Is6() {
		t.Fatalf("want an IPv4 and an IPv6 address: %v", res)
	}
	return ips
}

func (p *pod) ping(t *testing.T, dst string, args ...string) {
	t.Helper()
	err := cluster.Eventually(20*time.Second, func() error {
		_, err := p.Run(t.Context(), "ping", append([]string{"-c1", "-W1"}, append(args, dst)...)...)
		return err
	})
	if err != nil {
		t.Fatalf("%s → %s: %v", p.Name, dst, err)
	}
}

// sourceSeen sends a datagram from p to dst's UDP listener and returns the
// source address dst saw: what NAT, if any, made of p's address.
func sourceSeen(t *testing.T, from *lab.Host, to *lab.Host, dst netip.Addr) netip.Addr {
	t.Helper()
	pc, err := to.ListenPacket("udp", net.JoinHostPort(dst.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	addr := netip.MustParseAddrPort(pc.LocalAddr().String())
	c, err := from.DialContext(t.Context(), "udp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64)
	for range 20 {
		c.Write([]byte("hello"))
		pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, src, err := pc.ReadFrom(buf); err == nil {
			return netip.MustParseAddrPort(src.String()).Addr().Unmap()
		}
	}
	t.Fatalf("%s → %v: nothing came", from.Name, addr)
	return netip.Addr{}
}

// Pods on two homes behind NAT boxes, one of them symmetric, and on the
// anchor: each gets addresses of its node's ranges; they reach each other
// over both families with full-size packets and their own addresses; a
// pod reaches other nodes' overlay addresses, and the Internet through its
// node's uplink, masqueraded.
func TestPodsAcrossHomes(t *testing.T) {
	w := newWorld(t)
	web := w.publicHost("web")
	a := w.anchor("anchor", w.publicHost("anchor"))
	ha := w.home("home-a", lab.HomeOptions{NAT: lab.EIM})
	hb := w.home("home-b", lab.HomeOptions{NAT: lab.Symmetric})
	na := w.join("home-a", ha.Machines[0], a)
	nb := w.join("home-b", hb.Machines[0], a)
	stA := na.waitConnected(60*time.Second, "anchor", "home-b")
	stB := nb.waitConnected(60*time.Second, "anchor", "home-a")

	pa := w.pod(na.runtime(), "pod-a", nil)
	pb := w.pod(nb.runtime(), "pod-b", nil)
	pn := w.pod(a.runtime(), "pod-anchor", nil)
	for _, c := range []struct {
		p *pod
		n *node
	}{{pa, na}, {pb, nb}, {pn, a}} {
		cidrs := c.n.podCIDRs()
		if len(cidrs) != 2 || !cidrs[0].Contains(c.p.ips[0]) || !cidrs[1].Contains(c.p.ips[1]) {
			t.Fatalf("%s has %v, outside %s's ranges %v", c.p.Name, c.p.ips, c.n.Name, cidrs)
		}
	}

	// Behind the symmetric NAT, pods' traffic goes through the TURN relay.
	na.waitPath(40*time.Second, "home-b", "relay")
	for _, ip := range pb.ips {
		pa.ping(t, ip.String())
	}
	for _, ip := range pa.ips {
		pb.ping(t, ip.String())
	}
	// Full-size packets, not to be fragmented: 1400 bytes on the wire.
	pa.ping(t, pb.ips[0].String(), "-M", "do", "-s", "1372")
	pa.ping(t, pb.ips[1].String(), "-M", "do", "-s", "1352")
	pb.ping(t, pn.ips[0].String(), "-M", "do", "-s", "1372")
	pn.ping(t, pa.ips[1].String(), "-M", "do", "-s", "1352")
	// Across the overlay a pod keeps its address.
	if src := sourceSeen(t, pa.Host, pb.Host, pb.ips[0]); src != pa.ips[0] {
		t.Fatalf("pod-b saw pod-a as %v, not %v", src, pa.ips[0])
	}
	if src := sourceSeen(t, pa.Host, pb.Host, pb.ips[1]); src != pa.ips[1] {
		t.Fatalf("pod-b saw pod-a as %v, not %v", src, pa.ips[1])
	}
	// Other nodes' overlay addresses.
	for _, ip := range append(stB.OverlayIPs, stA.OverlayIPs...) {
		pa.ping(t, ip)
	}
	// The Internet, through the node's uplink: masqueraded by the node, then
	// by the home's box.
	pa.ping(t, web.IPv4.String())
	pn.ping(t, web.IPv4.String())
	pn.ping(t, web.IPv6.String())
	if src := sourceSeen(t, pa.Host, web, web.IPv4); src != ha.PublicIP {
		t.Fatalf("the Internet saw pod-a as %v, not home-a's box %v", src, ha.PublicIP)
	}
	if src := sourceSeen(t, pn.Host, web, web.IPv6); src != a.Host.IPv6 {
		t.Fatalf("the Internet saw pod-anchor as %v, not the anchor %v", src, a.Host.IPv6)
	}

	for _, c := range []struct {
		p *pod
		n *node
	}{{pa, na}, {pb, nb}, {pn, a}} {
		rt := c.n.runtime()
		if err := rt.Status(w.ctx); err != nil {
			t.Fatalf("STATUS on %s: %v", c.n.Name, err)
		}
		if err := rt.Del(w.ctx, c.p.att); err != nil {
			t.Fatalf("DEL %s: %v", c.p.Name, err)
		}
		atts, err := ipam.Load(filepath.Join(c.n.State, "cni", "hepto"))
		if err != nil || len(atts) != 0 {
			t.Fatalf("%s after DEL: %v %v", c.n.Name, atts, err)
		}
	}
}

// The reference portmap plugin, chained after hepto-cni, forwards a host
// port to a pod over both families; the reference bandwidth plugin, after
// it, finds the pod's host side in the result and shapes it. STATUS follows
// the daemon; on exit the daemon removes its rules and routes and leaves
// the configuration.
func TestPodsPortmapStatusAndStop(t *testing.T) {
	w := newWorld(t)
	client := w.publicHost("client")
	a := w.anchor("anchor", w.publicHost("anchor"))
	rt := a.runtime(
		map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}, "snat": true},
		map[string]any{"type": "bandwidth", "capabilities": map[string]any{"bandwidth": true}})
	eventually(t, 10*time.Second, func() error { return rt.Status(w.ctx) })

	maps := []map[string]any{{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}}
	bw := map[string]any{"ingressRate": 100_000_000, "ingressBurst": 1_000_000, "egressRate": 100_000_000, "egressBurst": 1_000_000}
	p := w.pod(rt, "web", map[string]any{"portMappings": maps, "bandwidth": bw})
	hostVeth := p.res.Interfaces[0].Name
	if out, err := a.Host.Run(w.ctx, "tc", "qdisc", "show", "dev", hostVeth); err != nil || !strings.Contains(out, "tbf") {
		t.Fatalf("no shaping on %s: %s %v", hostVeth, out, err)
	}
	ln, err := p.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "pod here, you are %s\n", c.RemoteAddr())
			c.Close()
		}
	}()
	get := func(addr netip.Addr) (string, error) {
		c, err := client.DialContext(w.ctx, "tcp", netip.AddrPortFrom(addr, 8080).String())
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		return bufio.NewReader(c).ReadString('\n')
	}
	for _, addr := range []netip.Addr{a.Host.IPv4, a.Host.IPv6} {
		line, err := get(addr)
		if err != nil || !strings.HasPrefix(line, "pod here") {
			t.Fatalf("client → %v:8080: %q %v", addr, line, err)
		}
		t.Logf("client → %v:8080: %s", addr, strings.TrimSpace(line))
	}
	if err := rt.Check(w.ctx, p.att); err != nil {
		t.Fatalf("CHECK of the chain: %v", err)
	}
	if err := rt.Del(w.ctx, p.att); err != nil {
		t.Fatal(err)
	}
	if line, err := get(a.Host.IPv4); err == nil {
		t.Fatalf("port still forwarded after DEL: %q", line)
	}

	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("anchor exit code %d", code)
	}
	var te *types.Error
	if err := rt.Status(w.ctx); !errors.As(err, &te) || te.Code != types.ErrPluginNotAvailable {
		t.Fatalf("STATUS with the daemon stopped: %v", err)
	}
	if _, err := os.Stat(filepath.Join(a.CNI, "10-hepto.conflist")); err != nil {
		t.Fatalf("configuration gone with the daemon: %v", err)
	}
	for _, cmd := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"ip", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"}} {
		out, err := a.Host.Run(w.ctx, cmd[0], cmd[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "HEPTO") || strings.Contains(out, "unreachable") {
			t.Fatalf("left after exit (%s):\n%s", cmd[0], out)
		}
	}
}

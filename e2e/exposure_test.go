package e2e

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// checkExposure: on the anchor's public addresses, nothing answers but
// what the README lists: WireGuard/ICE (UDP 51820), STUN and TURN (UDP
// 3478, relays in 49152-65535) and the published Services' ports
// (wantTCP, wantUDP: "IP PORT"). It looks twice: every listening socket
// of the anchor's network namespace bound to a public or wildcard
// address, and a TCP connect to each of the 65,535 ports from the
// Internet, which also finds what kube-proxy and hostPorts publish
// without a socket.
func checkExposure(t *testing.T, an *node, visitorBin string, visitor interface {
	Run(context.Context, string, ...string) (string, error)
}, wantTCP, wantUDP []string) {
	t.Helper()
	public := []netip.Addr{an.Host.IPv4, an.Host.IPv6}
	ctx, cancel := context.WithTimeout(an.w.ctx, 2*time.Minute)
	defer cancel()
	out, err := an.Host.Run(ctx, "ss", "-Hlntu")
	if err != nil {
		t.Fatalf("ss on the anchor: %v: %s", err, out)
	}
	var exposed, listed []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		proto, local := f[0], f[4]
		i := strings.LastIndex(local, ":")
		host, port := strings.Trim(local[:i], "[]"), local[i+1:]
		if h, _, ok := strings.Cut(host, "%"); ok {
			host = h
		}
		p, _ := strconv.Atoi(port)
		a, err := netip.ParseAddr(host)
		wildcard := host == "*" || err == nil && a.IsUnspecified()
		if !wildcard && (err != nil || !slices.Contains(public, a.Unmap())) {
			continue // loopback, overlay, pods
		}
		listed = append(listed, proto+" "+local)
		switch {
		case proto == "udp" && (p == 51820 || p == 3478 || p >= 49152):
			continue // WireGuard and ICE, STUN and TURN, TURN's relays
		case proto == "udp" && slices.ContainsFunc(wantUDP, func(w string) bool { return matches(w, host, wildcard, port) }):
			continue
		case proto == "tcp" && slices.ContainsFunc(wantTCP, func(w string) bool { return matches(w, host, wildcard, port) }):
			continue
		}
		exposed = append(exposed, proto+" "+local)
	}
	if len(exposed) > 0 {
		t.Errorf("the anchor listens on its public side beyond what the README lists: %v", exposed)
	}
	t.Logf("the anchor's sockets on its public side: %v", listed)
	for _, ip := range public {
		open, err := visitor.Run(ctx, visitorBin, "scan", ip.String())
		if err != nil {
			t.Fatalf("scan %s: %v", ip, err)
		}
		var want []string
		for _, w := range wantTCP {
			if h, p, _ := strings.Cut(w, " "); h == ip.String() {
				want = append(want, p)
			}
		}
		slices.Sort(want)
		got := strings.Fields(open)
		slices.SortFunc(got, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
		slices.SortFunc(want, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
		if !slices.Equal(got, want) {
			t.Errorf("TCP ports open on the anchor's %s from the Internet: %v, want the published ones alone: %v", ip, got, want)
		} else {
			t.Logf("TCP ports open on the anchor's %s from the Internet: %v (the published Services')", ip, got)
		}
	}
}

func matches(want, host string, wildcard bool, port string) bool {
	h, p, _ := strings.Cut(want, " ")
	return p == port && (h == host || wildcard)
}

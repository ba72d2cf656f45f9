package daemon

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/metrics"
	"github.com/hepto-net/hepto/nat"
)

func (d *Daemon) ping(ctx context.Context, ip netip.Addr) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return d.tun.Ping(ctx, ip)
}

func (d *Daemon) recordRTT(peer string, rtt time.Duration) {
	d.mu.Lock()
	d.rtt[peer] = rtt
	d.mu.Unlock()
	d.metrics.ObserveRTT(peer, rtt)
}

// metricPeers is the peers' state for a scrape.
func (d *Daemon) metricPeers() []metrics.Peer {
	st, err := d.status()
	if err != nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]metrics.Peer, 0, len(st.Peers))
	for _, p := range st.Peers {
		mp := metrics.Peer{Name: p.Name, Path: p.Path, Up: p.Connected, RxBytes: p.RxBytes, TxBytes: p.TxBytes, PathChanges: uint64(d.pathChanges[p.Name])}
		if p.LastHandshake != nil {
			mp.LastHandshake = *p.LastHandshake
		}
		if d.nat != nil {
			if n, ok := d.members.Find(p.Name); ok && !n.IsAnchor() {
				mp.ICEState = "disconnected"
				if _, up := d.paths[p.Name]; up {
					mp.ICEState = "connected"
				}
			}
		}
		out = append(out, mp)
	}
	return out
}

// serveMetrics serves Prometheus metrics on the --metrics address: on an
// overlay address through the tunnel (so that netstack mode works too),
// elsewhere through the kernel.
func (d *Daemon) serveMetrics(ctx context.Context) error {
	if d.cfg.Metrics == "" {
		return nil
	}
	addr := d.cfg.Metrics
	if port, ok := strings.CutPrefix(addr, "overlay:"); ok {
		// The node's own overlay IPv4 address, unknown before it joins.
		addr = net.JoinHostPort(d.self.OverlayIPs[0].String(), port)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("--metrics %q: want IP:PORT or overlay:PORT (%w)", d.cfg.Metrics, err)
	}
	var ln net.Listener
	if containsAddr(d.self.OverlayIPs, ap.Addr()) {
		ln, err = d.tun.Listen("tcp", ap)
	} else {
		ln, err = net.Listen("tcp", ap.String())
	}
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	d.log.Info("metrics", "addr", "http://"+ap.String()+"/metrics")
	return d.metrics.Serve(ctx, ln)
}

// handlePing makes one round trip to a node and says how it went.
func (d *Daemon) handlePing(w http.ResponseWriter, r *http.Request) {
	var req localapi.PingRequest
	if err := control.Decode(r.Body, &req); err != nil {
		localapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	d.mu.Lock()
	n, ok := d.members.Find(req.Node)
	d.mu.Unlock()
	if !ok || n.Name == d.self.Name {
		localapi.WriteError(w, http.StatusNotFound, fmt.Errorf("no peer %q in the cluster", req.Node))
		return
	}
	rtt, err := d.ping(r.Context(), n.OverlayIPs[0])
	if err != nil {
		localapi.WriteError(w, http.StatusGatewayTimeout, fmt.Errorf("no answer from %s (%s): %w", n.Name, n.OverlayIPs[0], err))
		return
	}
	d.recordRTT(n.Name, rtt)
	pong := localapi.Pong{Node: n.Name, IP: n.OverlayIPs[0].String(), RTTSeconds: rtt.Seconds()}
	if st, err := d.status(); err == nil {
		for _, p := range st.Peers {
			if p.Name == n.Name {
				pong.Path, pong.Via, pong.Endpoint = p.Path, p.Via, p.Endpoint
			}
		}
	}
	localapi.WriteJSON(w, http.StatusOK, pong)
}

// handleNetcheck tells what this node is behind.
func (d *Daemon) handleNetcheck(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	m, mgr := d.members, d.nat
	d.mu.Unlock()
	res := localapi.Netcheck{NAT: "unknown", Observations: []localapi.Observation{}, Anchors: []localapi.AnchorCheck{}}
	if d.isAnchor() {
		res.NAT = "none"
		if ep := resolveEndpoint(d.self.Endpoint); ep.IsValid() {
			res.PublicIPv4 = ep.Addr().String()
		}
	}
	var mapped []netip.AddrPort
	for _, n := range m.Nodes {
		if !n.IsAnchor() || n.Name == d.self.Name {
			continue
		}
		ep := resolveEndpoint(n.Endpoint)
		ac := localapi.AnchorCheck{Name: n.Name, Endpoint: n.Endpoint}
		if ep.IsValid() && mgr != nil {
			// The STUN server's port, then the anchor's WireGuard port.
			for _, server := range []netip.AddrPort{netip.AddrPortFrom(ep.Addr(), nat.ServerPort), ep} {
				o := localapi.Observation{Server: server.String()}
				got, rtt, err := mgr.Mapped(server, 2*time.Second)
				if err != nil {
					o.Error = err.Error()
				} else {
					o.Mapped, o.RTTSeconds = got.String(), rtt.Seconds()
					mapped = append(mapped, got)
					ac.Reachable, ac.RTTSeconds = true, rtt.Seconds()
				}
				res.Observations = append(res.Observations, o)
			}
		} else if rtt, err := d.ping(r.Context(), n.OverlayIPs[0]); err == nil {
			ac.Reachable, ac.RTTSeconds = true, rtt.Seconds()
		}
		res.Anchors = append(res.Anchors, ac)
	}
	if len(mapped) >= 2 {
		res.NAT = "endpoint-independent"
		for _, a := range mapped[1:] {
			if a != mapped[0] {
				res.NAT = "endpoint-dependent"
			}
		}
		for _, a := range mapped {
			if a.Port() == d.tun.ListenPort() && localAddr(a.Addr()) {
				res.NAT = "none"
			}
			if a.Addr().Is4() {
				res.PublicIPv4 = a.Addr().String()
			} else {
				res.PublicIPv6 = a.Addr().String()
			}
		}
	}
	localapi.WriteJSON(w, http.StatusOK, res)
}

// localAddr reports whether a is one of this host's addresses.
func localAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if ipn, ok := x.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(ipn.IP); ok && b.Unmap() == a {
				return true
			}
		}
	}
	return false
}

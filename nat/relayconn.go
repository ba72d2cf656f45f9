package nat

import (
	"net"
	"net/netip"
	"sync"
)

// ICE's TURN clients cannot share the WireGuard socket as its host and
// server-reflexive candidates do: a TURN server gives one allocation per
// client address and port, and each ICE session (one per peer) makes its
// own. So each relay candidate has a socket of its own, on an ephemeral
// port (ICE asks hostNet.ListenPacket for one, and for nothing else:
// host and server-reflexive candidates go through the mux). On it, only
// the TURN server may talk: its peers' packets come through the server.

// ListenPacket opens a TURN client's socket that hears only from the
// addresses it has sent to (its TURN server).
func (h *hostNet) ListenPacket(network, address string) (net.PacketConn, error) {
	pc, err := h.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	return &serverOnlyConn{PacketConn: pc}, nil
}

// serverOnlyConn drops what comes from an address it has not sent to.
type serverOnlyConn struct {
	net.PacketConn
	mu   sync.Mutex
	sent map[netip.AddrPort]bool
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := u.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

func (c *serverOnlyConn) WriteTo(b []byte, to net.Addr) (int, error) {
	if ap, ok := addrPort(to); ok {
		c.mu.Lock()
		if c.sent == nil {
			c.sent = map[netip.AddrPort]bool{}
		}
		c.sent[ap] = true
		c.mu.Unlock()
	}
	return c.PacketConn.WriteTo(b, to)
}

func (c *serverOnlyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			return n, from, err
		}
		ap, ok := addrPort(from)
		c.mu.Lock()
		known := ok && c.sent[ap]
		c.mu.Unlock()
		if known {
			return n, from, nil
		}
	}
}

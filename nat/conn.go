package nat

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// PacketConn is the ICE side of the WireGuard socket: ReadFrom yields the
// STUN datagrams that the tunnel took out of its batches (Deliver), WriteTo
// sends from the same socket. ICE thus finds the very NAT mappings that
// WireGuard then uses.
type PacketConn struct {
	send  func(pkt []byte, to netip.AddrPort) error
	port  int
	in    chan datagram
	done  chan struct{}
	close sync.Once

	mu       sync.Mutex
	deadline time.Time
}

type datagram struct {
	b    []byte
	from netip.AddrPort
}

// NewPacketConn wraps the tunnel's raw send on its UDP port.
func NewPacketConn(port uint16, send func([]byte, netip.AddrPort) error) *PacketConn {
	return &PacketConn{send: send, port: int(port), in: make(chan datagram, 128), done: make(chan struct{})}
}

// Deliver queues a datagram the tunnel received; it copies pkt and drops
// when the queue is full, as a socket buffer would.
func (c *PacketConn) Deliver(pkt []byte, from netip.AddrPort) {
	select {
	case c.in <- datagram{append([]byte(nil), pkt...), from}:
	default:
	}
}

func (c *PacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, ap, err := c.ReadFromAddrPort(b)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// ReadFromAddrPort lets pion's mux avoid an allocation per packet.
func (c *PacketConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	c.mu.Lock()
	d := c.deadline
	c.mu.Unlock()
	var timeout <-chan time.Time
	if !d.IsZero() {
		t := time.NewTimer(time.Until(d))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case p := <-c.in:
		return copy(b, p.b), p.from, nil
	case <-c.done:
		return 0, netip.AddrPort{}, net.ErrClosed
	case <-timeout:
		return 0, netip.AddrPort{}, os.ErrDeadlineExceeded
	}
}

func (c *PacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Err: net.UnknownNetworkError(addr.Network())}
	}
	return c.WriteToAddrPort(b, ua.AddrPort())
}

func (c *PacketConn) WriteToAddrPort(b []byte, ap netip.AddrPort) (int, error) {
	select {
	case <-c.done:
		return 0, net.ErrClosed
	default:
	}
	if err := c.send(b, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (c *PacketConn) Close() error {
	c.close.Do(func() { close(c.done) })
	return nil
}

// LocalAddr is the unspecified address on the WireGuard port: candidates
// are gathered from the host's interfaces, both families.
func (c *PacketConn) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv6unspecified, Port: c.port} }

func (c *PacketConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *PacketConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

func (c *PacketConn) SetWriteDeadline(time.Time) error { return nil }

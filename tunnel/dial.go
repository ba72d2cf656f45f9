package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// DialContext connects into the overlay: through the kernel (its routes
// lead to the TUN) or through the netstack. network is tcp or udp, with an
// optional 4 or 6.
func (t *Tunnel) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("tunnel: dial: unsupported network %q", network)
	}
	if t.tnet == nil {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("tunnel: dial %s: %w", address, err)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return t.tnet.DialContext(ctx, network, address)
	}
	// The netstack has no resolver of its own: names resolve on the host.
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("tunnel: dial %s: %w", address, err)
	}
	var errs []error
	for _, ip := range ips {
		c, err := t.tnet.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("tunnel: dial %s: %w", address, errors.Join(errs...))
}

// Listen accepts TCP connections on an overlay address (or the unspecified
// address), through the kernel or the netstack.
func (t *Tunnel) Listen(network string, addr netip.AddrPort) (net.Listener, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("tunnel: listen: unsupported network %q", network)
	}
	if t.tnet == nil {
		return net.ListenTCP(network, net.TCPAddrFromAddrPort(addr))
	}
	ln, err := t.tnet.ListenTCPAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("tunnel: listen on %v: %w", addr, err)
	}
	return ln, nil
}

// ListenPacket opens a UDP socket on an overlay address (or the
// unspecified address), through the kernel or the netstack.
func (t *Tunnel) ListenPacket(network string, addr netip.AddrPort) (net.PacketConn, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("tunnel: listen: unsupported network %q", network)
	}
	if t.tnet == nil {
		return net.ListenUDP(network, net.UDPAddrFromAddrPort(addr))
	}
	pc, err := t.tnet.ListenUDPAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("tunnel: listen on %v: %w", addr, err)
	}
	return pc, nil
}

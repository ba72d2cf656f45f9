package nat

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v4"
)

// BindingResponse answers a STUN binding request that reached an anchor's
// WireGuard port: with the STUN server's port, it gives nodes a second
// observation of their mapping, to tell an endpoint-independent NAT from a
// symmetric one. ok is false for anything else.
func BindingResponse(pkt []byte, from netip.AddrPort) (resp []byte, ok bool) {
	if !stun.IsMessage(pkt) {
		return nil, false
	}
	req := &stun.Message{Raw: append([]byte(nil), pkt...)}
	if err := req.Decode(); err != nil || req.Type != stun.BindingRequest {
		return nil, false
	}
	m, err := stun.Build(
		stun.NewTransactionIDSetter(req.TransactionID),
		stun.BindingSuccess,
		&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())},
		stun.Fingerprint,
	)
	if err != nil {
		return nil, false
	}
	return m.Raw, true
}

// Mapped asks a STUN server, from the WireGuard socket, what address it
// sees us at, and how long the answer took.
func (m *Manager) Mapped(server netip.AddrPort, timeout time.Duration) (netip.AddrPort, time.Duration, error) {
	start := time.Now()
	xor, err := m.mux.GetXORMappedAddr(net.UDPAddrFromAddrPort(server), timeout)
	if err != nil {
		return netip.AddrPort{}, 0, fmt.Errorf("STUN %s: %w", server, err)
	}
	a, ok := netip.AddrFromSlice(xor.IP)
	if !ok {
		return netip.AddrPort{}, 0, fmt.Errorf("STUN %s: bad address", server)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(xor.Port)), time.Since(start), nil
}

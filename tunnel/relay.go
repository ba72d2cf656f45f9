package tunnel

import (
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/conn"
)

// Relayed paths. When ICE selects a TURN relay candidate of ours, the
// peer's WireGuard endpoint stays the remote candidate's address, but what
// the device sends there goes through the relay (SetRelay), and what the
// relay delivers is fed back to the device as if it came from that address
// (Inject). WireGuard stays end to end: the relay sees only ciphertext.

// relayQueue bounds packets waiting between the relay and the device.
const relayQueue = 256

type relayed struct {
	pkt  []byte
	from netip.AddrPort
}

type relays struct {
	mu     sync.Mutex
	routes map[netip.AddrPort]func([]byte) error // copy-on-write, read without the lock
	cur    atomic.Pointer[map[netip.AddrPort]func([]byte) error]
	in     chan relayed
}

func (r *relays) set(remote netip.AddrPort, send func([]byte) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := maps.Clone(r.routes)
	if m == nil {
		m = map[netip.AddrPort]func([]byte) error{}
	}
	if send == nil {
		delete(m, remote)
	} else {
		m[remote] = send
	}
	r.routes = m
	r.cur.Store(&m)
}

// lookup finds the relay for an endpoint; nil for a direct one.
func (r *relays) lookup(ep conn.Endpoint) func([]byte) error {
	m := r.cur.Load()
	if m == nil || len(*m) == 0 {
		return nil
	}
	se, ok := ep.(*conn.StdNetEndpoint)
	if !ok {
		return nil
	}
	return (*m)[netip.AddrPortFrom(se.Addr().Unmap(), se.Port())]
}

// receive is one more ReceiveFunc for the device: packets from relays.
func (r *relays) receive(closed <-chan struct{}) conn.ReceiveFunc {
	return func(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		var p relayed
		select {
		case <-closed:
			return 0, net.ErrClosed
		case p = <-r.in:
		}
		n := 0
		for {
			sizes[n] = copy(bufs[n], p.pkt)
			eps[n] = &conn.StdNetEndpoint{AddrPort: p.from}
			n++
			if n == len(bufs) {
				return n, nil
			}
			select {
			case p = <-r.in:
			default:
				return n, nil
			}
		}
	}
}

// SetRelay sends what the device sends to remote through send, until
// ClearRelay. send must not keep the slice.
func (t *Tunnel) SetRelay(remote netip.AddrPort, send func([]byte) error) {
	t.bind.relays.set(unmap(remote), send)
}

// ClearRelay makes remote a direct endpoint again.
func (t *Tunnel) ClearRelay(remote netip.AddrPort) { t.bind.relays.set(unmap(remote), nil) }

// Inject hands the device a WireGuard packet that a relay delivered from
// remote. It copies pkt; when the device lags, it drops, as a network would.
func (t *Tunnel) Inject(pkt []byte, from netip.AddrPort) {
	select {
	case t.bind.relays.in <- relayed{pkt: append([]byte(nil), pkt...), from: unmap(from)}:
	default:
	}
}

func unmap(ap netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) }

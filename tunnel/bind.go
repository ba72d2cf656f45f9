package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
)

// sharedBind is the device's conn.Bind. It wraps wireguard-go's StdNetBind, so the
// batched I/O (recvmmsg, sendmmsg, UDP GSO and GRO) stays, and shares its
// sockets, one per address family, with ICE: datagrams that are not
// WireGuard are taken out of each received batch and handed to onPacket.
type sharedBind struct {
	inner    conn.Bind
	onPacket func(pkt []byte, from netip.AddrPort)
	// onHandshake, when set, is called (it must not block) when a
	// handshake initiation arrives on the socket.
	onHandshake func()
	log         *slog.Logger
	ready       <-chan struct{} // closed once the device's pools are capped
	port        atomic.Uint32
	dropped     atomic.Uint64 // neither WireGuard, STUN nor ChannelData
	relays      relays
	closed      chan struct{} // of the current Open
}

var _ conn.Bind = (*sharedBind)(nil)

func newBind(onPacket func([]byte, netip.AddrPort), log *slog.Logger, ready <-chan struct{}) *sharedBind {
	b := &sharedBind{inner: conn.NewStdNetBind(), onPacket: onPacket, log: log, ready: ready}
	b.relays.in = make(chan relayed, relayQueue)
	return b
}

// Open is called by the device at start and again whenever the port changes.
func (b *sharedBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.inner.Open(port)
	if err != nil {
		return nil, 0, err
	}
	b.port.Store(uint32(actual))
	wrapped := make([]conn.ReceiveFunc, len(fns))
	for i, fn := range fns {
		wrapped[i] = (&receiver{bind: b, inner: fn}).receive
	}
	b.closed = make(chan struct{})
	wrapped = append(wrapped, b.relays.receive(b.closed))
	b.log.Debug("udp sockets open", "port", actual, "sockets", len(fns))
	return wrapped, actual, nil
}

func (b *sharedBind) Close() error {
	b.port.Store(0)
	if b.closed != nil {
		close(b.closed)
		b.closed = nil
	}
	return b.inner.Close()
}

func (b *sharedBind) SetMark(mark uint32) error { return b.inner.SetMark(mark) }

func (b *sharedBind) ParseEndpoint(s string) (conn.Endpoint, error) { return b.inner.ParseEndpoint(s) }

// BatchSize is smaller than StdNetBind's so that each receiving goroutine of
// the device holds fewer 64 KiB buffers (see pools.go). It waits for the
// pools to be capped: the device reads it before its first buffer.
func (b *sharedBind) BatchSize() int {
	<-b.ready
	return min(b.inner.BatchSize(), deviceBatch)
}

// Send keeps StdNetBind's sticky source address, but when that address is
// gone (the host was renumbered) it sends once more without it: upstream
// clears it from a route listener that only runs for a bare StdNetBind.
func (b *sharedBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	if send := b.relays.lookup(ep); send != nil {
		for _, buf := range bufs {
			if err := send(buf); err != nil {
				return err
			}
		}
		return nil
	}
	err := b.inner.Send(bufs, ep)
	if err != nil && ep.SrcIP().IsValid() && staleSource(err) {
		fresh, perr := b.inner.ParseEndpoint(ep.DstToString())
		if perr == nil {
			err = b.inner.Send(bufs, fresh)
		}
	}
	return err
}

func staleSource(err error) bool {
	for _, e := range []error{syscall.EINVAL, syscall.EADDRNOTAVAIL, syscall.ENODEV, syscall.ENETUNREACH} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// SendRaw sends one datagram that is not WireGuard from the shared socket.
func (b *sharedBind) SendRaw(pkt []byte, to netip.AddrPort) error {
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	if !to.IsValid() {
		return fmt.Errorf("send raw: invalid address %v", to)
	}
	ep, err := b.inner.ParseEndpoint(to.String())
	if err != nil {
		return fmt.Errorf("send raw to %v: %w", to, err)
	}
	if err := b.inner.Send([][]byte{pkt}, ep); err != nil {
		return fmt.Errorf("send raw to %v: %w", to, err)
	}
	return nil
}

func (b *sharedBind) deliver(pkt []byte, ep conn.Endpoint) {
	if b.onPacket == nil {
		b.dropped.Add(1)
		return
	}
	var from netip.AddrPort
	if se, ok := ep.(*conn.StdNetEndpoint); ok {
		from = se.AddrPort
	} else if ap, err := netip.ParseAddrPort(ep.DstToString()); err == nil {
		from = ap
	}
	b.onPacket(pkt, from)
}

// Sizes of the spare buffers a receiver adds behind the device's own.
const (
	spareLarge = 1<<16 - 1 // a whole GRO-coalesced read
	spareSmall = 16 << 10  // one datagram split out of a GRO read; WireGuard at any sane MTU
	groReads   = conn.IdealBatchSize / 64
)

// receiver wraps one of StdNetBind's receive functions. StdNetBind always
// works on IdealBatchSize (128) messages: with UDP GRO it reads the last
// groReads messages and splits them into the first ones. So it is given the
// device's batchSize buffers followed by spare ones; WireGuard packets that
// land in a spare buffer are copied into the device's buffers, now or on the
// next call.
type receiver struct {
	bind    *sharedBind
	inner   conn.ReceiveFunc
	outer   int // the device's batch size
	bufs    [][]byte
	sizes   []int
	eps     []conn.Endpoint
	pending []int // indexes in bufs of WireGuard packets not handed over yet
}

func (r *receiver) setup(outer int) {
	n := max(r.bind.inner.BatchSize(), outer)
	if r.outer == outer && len(r.bufs) == n {
		return
	}
	r.outer = outer
	r.bufs = make([][]byte, n)
	r.sizes = make([]int, n)
	r.eps = make([]conn.Endpoint, n)
	r.pending = make([]int, 0, n)
	for i := outer; i < n; i++ {
		size := spareSmall
		if i == outer || i >= n-groReads {
			// A datagram read whole, not split, can land here.
			size = spareLarge
		}
		r.bufs[i] = make([]byte, size)
	}
}

func (r *receiver) receive(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	if len(r.pending) > 0 {
		return r.drain(bufs, sizes, eps), nil
	}
	r.setup(len(bufs))
	for {
		copy(r.bufs, bufs)
		n, err := r.inner(r.bufs, r.sizes, r.eps)
		if err != nil {
			return 0, err
		}
		out := 0
		for i := range n {
			size := r.sizes[i]
			if size == 0 {
				continue
			}
			pkt := r.bufs[i][:size]
			switch classify(pkt) {
			case kindWireGuard:
				if pkt[0] == wgHandshakeInitiation && r.bind.onHandshake != nil {
					r.bind.onHandshake()
				}
				if out == len(bufs) {
					r.pending = append(r.pending, i)
					continue
				}
				if i != out {
					copy(bufs[out], pkt)
				}
				sizes[out] = size
				eps[out] = r.eps[i]
				out++
			case kindSTUN, kindChannelData:
				r.bind.deliver(pkt, r.eps[i])
			default:
				r.bind.dropped.Add(1)
			}
		}
		if out > 0 {
			return out, nil
		}
		// Nothing for the device: returning 0 would make it spin.
	}
}

func (r *receiver) drain(bufs [][]byte, sizes []int, eps []conn.Endpoint) int {
	n := min(len(bufs), len(r.pending))
	for j, i := range r.pending[:n] {
		sizes[j] = copy(bufs[j], r.bufs[i][:r.sizes[i]])
		eps[j] = r.eps[i]
	}
	r.pending = r.pending[:copy(r.pending, r.pending[n:])]
	return n
}

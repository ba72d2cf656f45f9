package mesh

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/membership"
)

// DefaultRTTInterval is how often each link's round-trip time is measured.
const DefaultRTTInterval = 90 * time.Second

// Round trips are measured by one end of each pair only (measures): a
// 16-byte UDP probe to the other's control port, answered at once, 108
// bytes each way on the wire. The probe carries the prober's previous
// measurement, so the other end learns the link's RTT without an exchange
// of its own: one exchange a pair per interval, no more than the
// keepalives it also stands in for.
const (
	rttMagic   = "hRTT"
	rttProbe   = 1
	rttReply   = 2
	rttSize    = 16
	rttTimeout = 2 * time.Second
)

// rttPacket is magic, kind, 3 zero bytes, sequence, previous RTT in µs.
func rttPacket(kind byte, seq uint32, prev time.Duration) []byte {
	b := make([]byte, rttSize)
	copy(b, rttMagic)
	b[4] = kind
	binary.BigEndian.PutUint32(b[8:], seq)
	binary.BigEndian.PutUint32(b[12:], uint32(min(prev.Microseconds(), 1<<32-1)))
	return b
}

func parseRTTPacket(b []byte) (kind byte, seq uint32, prev time.Duration, ok bool) {
	if len(b) != rttSize || string(b[:4]) != rttMagic || (b[4] != rttProbe && b[4] != rttReply) {
		return 0, 0, 0, false
	}
	return b[4], binary.BigEndian.Uint32(b[8:]), time.Duration(binary.BigEndian.Uint32(b[12:])) * time.Microsecond, true
}

// rttProber waits for replies to its probes.
type rttProber struct {
	mu      sync.Mutex
	seq     uint32
	waiting map[uint32]chan struct{}
}

// measureRTT answers probes on each overlay address and, every interval,
// probes the peers this node measures.
func (m *Mesh) measureRTT(ctx context.Context) error {
	if m.o.RTTInterval <= 0 {
		return nil
	}
	pr := &rttProber{waiting: map[uint32]chan struct{}{}}
	var conns []net.PacketConn
	for _, ip := range m.o.Self.OverlayIPs {
		pc, err := m.o.Tunnel.ListenPacket("udp", netip.AddrPortFrom(ip, control.Port))
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return err
		}
		conns = append(conns, pc)
		go m.answerRTT(pc, pr)
	}
	defer func() {
		for _, pc := range conns {
			pc.Close()
		}
	}()
	timer := time.NewTimer(5 * time.Second) // once links are up
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		m.probeRTT(ctx, conns[0], pr)
		timer.Reset(m.o.RTTInterval)
	}
}

// probeRTT measures the links this node measures, all at once.
func (m *Mesh) probeRTT(ctx context.Context, pc net.PacketConn, pr *rttProber) {
	var wg sync.WaitGroup
	for _, n := range m.store.Current().Nodes {
		if n.Name == m.o.Self.Name || !measures(m.o.Self, n) {
			continue
		}
		wg.Add(1)
		go func(name string, ip netip.Addr) {
			defer wg.Done()
			m.mu.Lock()
			prev := m.rtt[name]
			m.mu.Unlock()
			rtt, ok := m.probeOnce(ctx, pc, pr, ip, prev)
			if !ok {
				return
			}
			m.recordRTT(name, rtt)
			if changed(prev, rtt) {
				// Tell the other end now rather than an interval later.
				if again, ok := m.probeOnce(ctx, pc, pr, ip, rtt); ok {
					m.recordRTT(name, again)
				}
			}
		}(n.Name, n.OverlayIPs[0])
	}
	wg.Wait()
}

// measures tells whether self measures its link to n: the end that does
// not send the link's keepalives (peers.go: a home to an anchor, the
// greater key between homes). The answer is data, to which WireGuard
// replies with a keepalive 10 s later unless the receiver sends first: on
// the end that sends keepalives anyway, that was one packet more each
// round; on this end it is the only one, and the busier end stays under
// 300 B/min (docs/benchmarks.md).
func measures(self, n membership.Node) bool {
	if self.IsAnchor() != n.IsAnchor() {
		return self.IsAnchor()
	}
	return self.PublicKey.Less(n.PublicKey)
}

// probeOnce sends one probe carrying prev and waits for its reply.
func (m *Mesh) probeOnce(ctx context.Context, pc net.PacketConn, pr *rttProber, ip netip.Addr, prev time.Duration) (time.Duration, bool) {
	pr.mu.Lock()
	pr.seq++
	seq, done := pr.seq, make(chan struct{})
	pr.waiting[seq] = done
	pr.mu.Unlock()
	defer func() {
		pr.mu.Lock()
		delete(pr.waiting, seq)
		pr.mu.Unlock()
	}()
	start := time.Now()
	if _, err := pc.WriteTo(rttPacket(rttProbe, seq, prev), net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, control.Port))); err != nil {
		return 0, false
	}
	select {
	case <-done:
		return time.Since(start), true
	case <-time.After(rttTimeout):
	case <-ctx.Done():
	}
	return 0, false
}

// changed tells a new RTT worth passing on at once: half as much again or
// less, beyond a millisecond of jitter.
func changed(prev, now time.Duration) bool {
	if prev == 0 {
		return true
	}
	return now > prev*3/2+time.Millisecond || now < prev*2/3-time.Millisecond
}

// answerRTT answers probes, keeps what they tell, and hands replies to the
// prober.
func (m *Mesh) answerRTT(pc net.PacketConn, pr *rttProber) {
	buf := make([]byte, 64)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		kind, seq, prev, ok := parseRTTPacket(buf[:n])
		if !ok {
			continue
		}
		switch kind {
		case rttReply:
			pr.mu.Lock()
			if done, ok := pr.waiting[seq]; ok {
				close(done)
				delete(pr.waiting, seq)
			}
			pr.mu.Unlock()
		case rttProbe:
			pc.WriteTo(rttPacket(rttReply, seq, 0), from)
			if name, ok := m.nodeAt(from); ok {
				m.probes.answered(name)
				if prev > 0 {
					m.recordRTT(name, prev)
				}
			}
		}
	}
}

// nodeAt names the member with that overlay address.
func (m *Mesh) nodeAt(a net.Addr) (string, bool) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return "", false
	}
	ip := ua.AddrPort().Addr().Unmap()
	for _, n := range m.store.Current().Nodes {
		if slices.Contains(n.OverlayIPs, ip) {
			return n.Name, true
		}
	}
	return "", false
}

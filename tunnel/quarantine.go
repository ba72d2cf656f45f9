package tunnel

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"
)

// quarantine holds the overlay addresses of nodes removed from the
// cluster that an anchor still hears, so that they can learn their
// removal: their packets reach this node only as TCP with one port (the
// control protocol, which tells them: their requests to it, their answers
// to its pushes), and nothing else of it, nor any node or pod behind it.
type quarantine struct {
	set atomic.Pointer[quarantineSet]
}

type quarantineSet struct {
	addrs map[netip.Addr]bool
	port  uint16
}

// SetQuarantine drops packets that come out of the tunnel from addrs, but
// TCP between port and this node's own addresses: to port, or from port
// without opening a connection (no SYN alone), since that is an answer to
// this node's own call. Nil addrs lift it.
func (t *Tunnel) SetQuarantine(addrs []netip.Addr, port uint16) {
	if len(addrs) == 0 {
		t.quarantine.set.Store(nil)
		return
	}
	q := &quarantineSet{addrs: make(map[netip.Addr]bool, len(addrs)), port: port}
	for _, a := range addrs {
		q.addrs[a.Unmap()] = true
	}
	t.quarantine.set.Store(q)
}

// filter keeps the packets of bufs (IP packets at offset) that may pass;
// with no quarantine it costs one atomic load.
func (q *quarantine) filter(bufs [][]byte, offset int, own []netip.Prefix) [][]byte {
	s := q.set.Load()
	if s == nil {
		return bufs
	}
	out := bufs[:0]
	for _, b := range bufs {
		if s.allows(b[offset:], own) {
			out = append(out, b)
		}
	}
	return out
}

func (s *quarantineSet) allows(pkt []byte, own []netip.Prefix) bool {
	src, dst, proto, l4, ok := ipHeader(pkt)
	if !ok {
		return false
	}
	if !s.addrs[src] {
		return true
	}
	if proto != 6 || len(l4) < 14 {
		return false
	}
	const syn, ack = 0x02, 0x10
	sport, dport, flags := binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4]), l4[13]
	if dport != s.port && (sport != s.port || flags&(syn|ack) == syn) {
		return false
	}
	for _, p := range own {
		if p.Addr() == dst {
			return true
		}
	}
	return false
}

// ipHeader reads the addresses, protocol and transport header of an IPv4
// packet, or of an IPv6 packet without extension headers (one with them is
// not for the control port: TCP follows the fixed header).
func ipHeader(pkt []byte) (src, dst netip.Addr, proto byte, l4 []byte, ok bool) {
	if len(pkt) < 1 {
		return
	}
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		if len(pkt) < 20 || ihl < 20 || len(pkt) < ihl {
			return
		}
		src, _ = netip.AddrFromSlice(pkt[12:16])
		dst, _ = netip.AddrFromSlice(pkt[16:20])
		// A fragment past the first carries no transport header.
		if binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 {
			return src, dst, pkt[9], nil, true
		}
		return src, dst, pkt[9], pkt[ihl:], true
	case 6:
		if len(pkt) < 40 {
			return
		}
		src, _ = netip.AddrFromSlice(pkt[8:24])
		dst, _ = netip.AddrFromSlice(pkt[24:40])
		return src, dst, pkt[6], pkt[40:], true
	}
	return
}

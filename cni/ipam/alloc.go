package ipam

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
)

// ErrExhausted is returned when a range has no free address left.
var ErrExhausted = errors.New("no free address")

// Acquire returns the attachment of (id, ifname), taking one address from
// each range for it unless it already has its addresses: a plugin that died
// between allocation and interface set-up is retried with the same ones.
// fresh tells whether addresses were taken by this call.
func (s *Store) Acquire(id, ifname string, ranges []netip.Prefix) (a Attachment, fresh bool, err error) {
	if a, ok := s.Find(id, ifname); ok {
		return a, false, nil
	}
	used := make(map[netip.Addr]bool, len(s.st.Attachments)*len(ranges))
	for _, a := range s.st.Attachments {
		for _, ip := range a.IPs {
			used[ip] = true
		}
	}
	a = Attachment{ContainerID: id, IfName: ifname}
	last := make(map[string]netip.Addr, len(ranges))
	for _, r := range ranges {
		ip, err := pick(r, used, s.st.Last[r.String()])
		if err != nil {
			return Attachment{}, false, err
		}
		a.IPs = append(a.IPs, ip)
		last[r.String()] = ip
	}
	if s.st.Last == nil {
		s.st.Last = map[string]netip.Addr{}
	}
	for k, v := range last {
		s.st.Last[k] = v
	}
	s.st.Attachments = append(s.st.Attachments, a)
	s.dirty = true
	return a, true, nil
}

// pick returns the first free address of r after last, going round.
func pick(r netip.Prefix, used map[netip.Addr]bool, last netip.Addr) (netip.Addr, error) {
	n := uint64(0)
	for ip := range used {
		if r.Contains(ip) {
			n++
		}
	}
	if n >= Size(r) {
		return netip.Addr{}, fmt.Errorf("pod range %v: %w (%d in use)", r, ErrExhausted, n)
	}
	ip := last
	if !r.Contains(ip) || !usable(r, ip) {
		ip = first(r)
	} else {
		ip = next(r, ip)
	}
	// Among n+1 usable addresses at least one is free.
	for range n + 1 {
		if !used[ip] {
			return ip, nil
		}
		ip = next(r, ip)
	}
	return netip.Addr{}, fmt.Errorf("pod range %v: %w", r, ErrExhausted)
}

// Size is the number of addresses of r that pods may get: all but the
// network address, the one after it (kept for a gateway) and, in IPv4, the
// broadcast address. Ranges of more than 2^64 addresses count as 2^64-1.
func Size(r netip.Prefix) uint64 {
	host := r.Addr().BitLen() - r.Bits()
	if host >= 64 {
		return math.MaxUint64
	}
	n := uint64(1) << host
	reserved := uint64(2)
	if r.Addr().Is4() {
		reserved = 3
	}
	if n <= reserved {
		return 0
	}
	return n - reserved
}

// Free is the number of addresses of r that no attachment holds.
func Free(r netip.Prefix, atts []Attachment) uint64 {
	n := uint64(0)
	for _, a := range atts {
		for _, ip := range a.IPs {
			if r.Contains(ip) {
				n++
			}
		}
	}
	if size := Size(r); n < size {
		return size - n
	}
	return 0
}

func first(r netip.Prefix) netip.Addr { return r.Masked().Addr().Next().Next() }

func usable(r netip.Prefix, ip netip.Addr) bool {
	base := r.Masked().Addr()
	if ip == base || ip == base.Next() {
		return false
	}
	return !(ip.Is4() && ip == broadcast(r))
}

// next is the usable address after ip in r, wrapping round.
func next(r netip.Prefix, ip netip.Addr) netip.Addr {
	ip = ip.Next()
	if !ip.IsValid() || !r.Contains(ip) || !usable(r, ip) {
		return first(r)
	}
	return ip
}

// broadcast is the last address of r.
func broadcast(r netip.Prefix) netip.Addr {
	b := r.Masked().Addr().AsSlice()
	for i := r.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

package tunnel

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// packet builds an IPv4 or IPv6 packet with a transport header whose
// destination port is port, at offset 4 of the buffer.
func packet(src, dst string, proto byte, port uint16) []byte {
	return segment(src, dst, proto, 40000, port, 0x10)
}

// segment is packet with a source port and TCP flags.
func segment(src, dst string, proto byte, sport, dport uint16, flags byte) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	var ip []byte
	if s.Is4() {
		ip = make([]byte, 20+20)
		ip[0], ip[9] = 0x45, proto
		copy(ip[12:16], s.AsSlice())
		copy(ip[16:20], d.AsSlice())
	} else {
		ip = make([]byte, 40+20)
		ip[0], ip[6] = 0x60, proto
		copy(ip[8:24], s.AsSlice())
		copy(ip[24:40], d.AsSlice())
	}
	binary.BigEndian.PutUint16(ip[len(ip)-20:], sport)
	binary.BigEndian.PutUint16(ip[len(ip)-18:], dport)
	ip[len(ip)-7] = flags
	return append(make([]byte, 4), ip...)
}

func TestQuarantine(t *testing.T) {
	own := []netip.Prefix{netip.MustParsePrefix("10.77.0.1/32"), netip.MustParsePrefix("fd00::1/128")}
	var tu Tunnel
	q := &tu.quarantine
	cases := []struct {
		name string
		pkt  []byte
		pass bool
	}{
		{"member", packet("10.77.0.2", "10.77.0.1", 6, 6443), true},
		{"removed, control port", packet("10.77.0.9", "10.77.0.1", 6, 51821), true},
		{"removed v6, control port", packet("fd00::9", "fd00::1", 6, 51821), true},
		{"removed, apiserver", packet("10.77.0.9", "10.77.0.1", 6, 6443), false},
		{"removed, UDP to the control port", packet("10.77.0.9", "10.77.0.1", 17, 51821), false},
		{"removed, forwarded to a pod", packet("10.77.0.9", "10.78.2.5", 6, 51821), false},
		{"removed v6, DNS", packet("fd00::9", "fd00::1", 17, 53), false},
		{"removed, answer from the control port", segment("10.77.0.9", "10.77.0.1", 6, 51821, 41000, 0x12), true},
		{"removed, SYN from the control port", segment("10.77.0.9", "10.77.0.1", 6, 51821, 6443, 0x02), false},
		{"garbage", []byte{0, 0, 0, 0, 0x45, 1}, true},
	}
	run := func() []bool {
		bufs := make([][]byte, len(cases))
		for i, c := range cases {
			bufs[i] = c.pkt
		}
		kept := map[*byte]bool{}
		for _, b := range q.filter(bufs, 4, own) {
			kept[&b[0]] = true
		}
		out := make([]bool, len(cases))
		for i, c := range cases {
			out[i] = kept[&c.pkt[0]]
		}
		return out
	}
	for i, got := range run() {
		if !got {
			t.Errorf("no quarantine: %s dropped", cases[i].name)
		}
	}
	tu.SetQuarantine([]netip.Addr{netip.MustParseAddr("10.77.0.9"), netip.MustParseAddr("fd00::9")}, 51821)
	for i, got := range run() {
		want := cases[i].pass
		if cases[i].name == "garbage" {
			want = false // not an IP packet: nothing to let through
		}
		if got != want {
			t.Errorf("%s: passed %v, want %v", cases[i].name, got, want)
		}
	}
	tu.SetQuarantine(nil, 0)
	for i, got := range run() {
		if !got {
			t.Errorf("quarantine lifted: %s dropped", cases[i].name)
		}
	}
}

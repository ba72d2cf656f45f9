package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"
)

// Ping sends one ICMP echo request from the host to dst and returns the round
// trip time. It needs no ping binary. The wait ends with ctx, or after 2s.
func (h *Host) Ping(ctx context.Context, dst netip.Addr) (time.Duration, error) {
	network, reqType, replyType := "ip4:icmp", byte(8), byte(0)
	if dst.Is6() && !dst.Is4In6() {
		network, reqType, replyType = "ip6:ipv6-icmp", 128, 129
	}
	c, err := h.ListenPacket(network, "")
	if err != nil {
		return 0, fmt.Errorf("%s: ping %s: %w", h.Name, dst, err)
	}
	defer c.Close()
	deadline := time.Now().Add(2 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()

	id, seq := uint16(os.Getpid()), uint16(time.Now().UnixNano())
	msg := make([]byte, 8+16)
	msg[0] = reqType
	binary.BigEndian.PutUint16(msg[4:], id)
	binary.BigEndian.PutUint16(msg[6:], seq)
	copy(msg[8:], "hepto-lab-ping..")
	if reqType == 8 {
		// The kernel checksums ICMPv6 itself, not ICMP.
		binary.BigEndian.PutUint16(msg[2:], checksum(msg))
	}
	start := time.Now()
	if _, err := c.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return 0, fmt.Errorf("%s: ping %s: %w", h.Name, dst, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				err = errors.Join(err, ctx.Err())
			}
			return 0, fmt.Errorf("%s: ping %s: no reply: %w", h.Name, dst, err)
		}
		a, ok := from.(*net.IPAddr)
		if !ok || n < 8 || buf[0] != replyType {
			continue
		}
		src, _ := netip.AddrFromSlice(a.IP)
		if src.Unmap() == dst.Unmap() &&
			binary.BigEndian.Uint16(buf[4:]) == id && binary.BigEndian.Uint16(buf[6:]) == seq {
			return time.Since(start), nil
		}
	}
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Ping sends one ICMP echo through the overlay and returns the round trip.
// In TUN mode it uses an unprivileged ICMP socket, or a raw one as root.
func (t *Tunnel) Ping(ctx context.Context, dst netip.Addr) (time.Duration, error) {
	dst = dst.Unmap()
	if !dst.IsValid() {
		return 0, errors.New("tunnel: ping: invalid address")
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	var (
		pc  net.PacketConn
		to  net.Addr
		err error
	)
	if t.tnet != nil {
		pc, err = t.tnet.DialPingAddr(netip.Addr{}, dst)
		to = nil
	} else {
		pc, to, err = kernelPingConn(dst)
	}
	if err != nil {
		return 0, fmt.Errorf("tunnel: ping %v: %w", dst, err)
	}
	defer pc.Close()
	stop := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := pc.SetReadDeadline(deadline); err != nil {
		return 0, fmt.Errorf("tunnel: ping %v: %w", dst, err)
	}
	rtt, err := echo(pc, to, dst.Is6())
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return 0, fmt.Errorf("tunnel: ping %v: %w", dst, err)
	}
	return rtt, nil
}

func kernelPingConn(dst netip.Addr) (net.PacketConn, net.Addr, error) {
	unpriv, raw, any := "udp4", "ip4:icmp", "0.0.0.0"
	if dst.Is6() {
		unpriv, raw, any = "udp6", "ip6:ipv6-icmp", "::"
	}
	if pc, err := icmp.ListenPacket(unpriv, any); err == nil {
		return pc, &net.UDPAddr{IP: dst.AsSlice()}, nil
	}
	pc, err := icmp.ListenPacket(raw, any)
	if err != nil {
		return nil, nil, err
	}
	return pc, &net.IPAddr{IP: dst.AsSlice()}, nil
}

// echo sends a request and waits for its reply, told by its payload (ping
// sockets rewrite the identifier).
func echo(pc net.PacketConn, to net.Addr, v6 bool) (time.Duration, error) {
	payload := make([]byte, 16)
	rand.Read(payload)
	seq := int(payload[0])<<8 | int(payload[1])
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: int(payload[2]), Seq: seq, Data: payload}}
	proto, reply := 1, icmp.Type(ipv4.ICMPTypeEchoReply)
	if v6 {
		msg.Type, proto, reply = ipv6.ICMPTypeEchoRequest, 58, ipv6.ICMPTypeEchoReply
	}
	b, err := msg.Marshal(nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if to == nil {
		_, err = pc.(interface{ Write([]byte) (int, error) }).Write(b)
	} else {
		_, err = pc.WriteTo(b, to)
	}
	if err != nil {
		return 0, err
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return 0, err
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.Seq == seq && bytes.Equal(e.Data, payload) {
			return time.Since(start), nil
		}
	}
}

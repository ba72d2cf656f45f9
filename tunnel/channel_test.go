package tunnel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

// Tests without root: tunnels whose TUN is wireguard-go's ChannelTUN (the
// test reads and writes the packets), built as New builds them (New itself
// only takes a kernel TUN or a netstack), with hepto's bind on real UDP
// sockets over loopback.

type chanTunnel struct {
	*Tunnel
	tun    *tuntest.ChannelTUN
	v4, v6 netip.Addr
}

func newChannelTunnel(t *testing.T, n int, onPacket func([]byte, netip.AddrPort)) *chanTunnel {
	t.Helper()
	ct := tuntest.NewChannelTUN()
	v4, v6 := netip.MustParseAddr(fmt.Sprintf("10.77.0.%d", n)), netip.MustParseAddr(fmt.Sprintf("fd77::%d", n))
	log := slog.New(slog.DiscardHandler)
	opts := Options{Name: "chan", MTU: DefaultMTU, PrivateKey: newKey(t), OnPacket: onPacket,
		Addresses: []netip.Prefix{netip.PrefixFrom(v4, 32), netip.PrefixFrom(v6, 128)}}
	tu := &Tunnel{log: log, opts: opts, done: make(chan struct{})}
	ready := make(chan struct{})
	tu.bind = newBind(onPacket, log, ready)
	tu.dev = device.NewDevice(&batchTUN{Device: ct.TUN(), ready: ready}, tu.bind, deviceLogger(log))
	if err := capPools(tu.dev, bufferCap); err != nil {
		t.Fatal(err)
	}
	close(ready)
	if err := tu.dev.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=0\n", opts.PrivateKey.Hex())); err != nil {
		t.Fatal(err)
	}
	if err := tu.dev.Up(); err != nil {
		t.Fatal(err)
	}
	go tu.watch()
	t.Cleanup(func() { tu.Close() })
	return &chanTunnel{Tunnel: tu, tun: ct, v4: v4, v6: v6}
}

// as is c as a peer reached at ep.
func (c *chanTunnel) as(ep netip.AddrPort) Peer {
	return Peer{PublicKey: c.opts.PrivateKey.Public(), Endpoint: ep,
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(c.v4, 32), netip.PrefixFrom(c.v6, 128)}}
}

func (c *chanTunnel) loopback() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), c.ListenPort())
}

func pairUp(t *testing.T, a, b *chanTunnel, aAt, bAt netip.AddrPort) {
	t.Helper()
	if err := a.SetPeers([]Peer{b.as(bAt)}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPeers([]Peer{a.as(aAt)}); err != nil {
		t.Fatal(err)
	}
}

// ipv6Packet is a bare IPv6 header with no next header and a payload.
func ipv6Packet(dst, src netip.Addr, payload []byte) []byte {
	p := make([]byte, 40+len(payload))
	p[0] = 6 << 4
	binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
	p[6], p[7] = 59, 64
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	copy(p[40:], payload)
	return p
}

// send hands pkt to from's device as the OS would, and waits for it on to's side.
func send(t *testing.T, from, to *chanTunnel, pkt []byte) {
	t.Helper()
	select {
	case from.tun.Outbound <- pkt:
	case <-time.After(5 * time.Second):
		t.Fatal("device does not read its TUN")
	}
	select {
	case got := <-to.tun.Inbound:
		if !bytes.Equal(got, pkt) {
			t.Fatalf("delivered %x, sent %x", got, pkt)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("packet %x not delivered", pkt[:20])
	}
}

func TestChannelTUNPair(t *testing.T) {
	a, b := newChannelTunnel(t, 1, nil), newChannelTunnel(t, 2, nil)
	if got := poolLimit(a.dev); got != messageBuffers {
		t.Fatalf("message buffer pool capped at %d, want %d", got, messageBuffers)
	}
	if got := a.dev.BatchSize(); got != batchSize {
		t.Fatalf("device batch size %d, want %d", got, batchSize)
	}
	pairUp(t, a, b, a.loopback(), b.loopback())
	send(t, a, b, tuntest.Ping(b.v4, a.v4))
	send(t, b, a, tuntest.Ping(a.v4, b.v4))
	send(t, a, b, ipv6Packet(b.v6, a.v6, []byte("over IPv6")))
	send(t, b, a, ipv6Packet(a.v6, b.v6, make([]byte, 1200)))

	// Cryptokey routing: a drops what b sends from an address a did not
	// give it; the next packet is the one that arrives.
	b.tun.Outbound <- tuntest.Ping(a.v4, netip.MustParseAddr("10.77.0.99"))
	send(t, b, a, tuntest.Ping(a.v4, b.v4))

	st, err := a.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 1 || st[0].PublicKey != b.opts.PrivateKey.Public() || st[0].LastHandshake.IsZero() || st[0].RxBytes == 0 || st[0].TxBytes == 0 {
		t.Fatalf("a's peer stats: %+v", st)
	}
	if st[0].Endpoint != b.loopback() {
		t.Fatalf("a reaches b at %v, want %v", st[0].Endpoint, b.loopback())
	}

	// A peer dropped from the set is gone from the device.
	if err := a.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	if st, err := a.Stats(); err != nil || len(st) != 0 {
		t.Fatalf("after SetPeers(nil): %+v %v", st, err)
	}
}

type datagram struct {
	pkt  []byte
	from netip.AddrPort
}

// The shared socket hands STUN and TURN ChannelData to OnPacket, with the
// sender's address, drops other datagrams, and keeps carrying WireGuard.
func TestSharedSocketDemux(t *testing.T) {
	got := make(chan datagram, 16)
	a := newChannelTunnel(t, 1, func(pkt []byte, from netip.AddrPort) {
		select {
		case got <- datagram{append([]byte(nil), pkt...), from}:
		default:
			t.Error("OnPacket: too many datagrams")
		}
	})
	b := newChannelTunnel(t, 2, nil)
	pairUp(t, a, b, a.loopback(), b.loopback())
	send(t, a, b, tuntest.Ping(b.v4, a.v4))

	pc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	self := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	to := net.UDPAddrFromAddrPort(a.loopback())

	stun := make([]byte, 20) // binding request, no attributes
	binary.BigEndian.PutUint16(stun[0:], 0x0001)
	binary.BigEndian.PutUint32(stun[4:], stunMagicCookie)
	copy(stun[8:], "transaction!")
	channelData := []byte{0x40, 0x01, 0x00, 0x04, 'd', 'a', 't', 'a'}
	dropped := a.bind.dropped.Load()
	for _, p := range [][]byte{{0xff, 0xff, 0xff, 0xff, 0xff}, {1, 2}, stun, channelData} {
		if _, err := pc.WriteToUDP(p, to); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range [][]byte{stun, channelData} {
		select {
		case d := <-got:
			if !bytes.Equal(d.pkt, want) || d.from != self {
				t.Fatalf("OnPacket got %x from %v, want %x from %v", d.pkt, d.from, want, self)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("OnPacket never got %x", want)
		}
	}
	if n := a.bind.dropped.Load() - dropped; n != 2 {
		t.Fatalf("%d datagrams dropped, want 2", n)
	}
	send(t, b, a, tuntest.Ping(a.v4, b.v4))

	// And the other way: raw datagrams leave from the shared socket.
	if err := a.SendRaw([]byte("stun reply"), self); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, from, err := pc.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if string(buf[:n]) != "stun reply" || from.Port() != a.ListenPort() {
		t.Fatalf("got %q from %v, want it from port %d", buf[:n], from, a.ListenPort())
	}
}

// A relayed pair: each peer's endpoint is a loopback port nobody listens
// on, what the device sends there goes through SetRelay's function, and the
// other side takes it in through Inject, as TURN does.
func TestRelayedPair(t *testing.T) {
	a, b := newChannelTunnel(t, 1, nil), newChannelTunnel(t, 2, nil)
	aAt, bAt := netip.MustParseAddrPort("127.0.0.1:8"), netip.MustParseAddrPort("127.0.0.1:9")
	var relayedAB, relayedBA atomic.Int64
	a.SetRelay(bAt, func(p []byte) error { relayedAB.Add(1); b.Inject(p, aAt); return nil })
	b.SetRelay(aAt, func(p []byte) error { relayedBA.Add(1); a.Inject(p, bAt); return nil })
	pairUp(t, a, b, aAt, bAt)
	send(t, a, b, tuntest.Ping(b.v4, a.v4))
	send(t, b, a, ipv6Packet(a.v6, b.v6, []byte("relayed")))
	if relayedAB.Load() == 0 || relayedBA.Load() == 0 {
		t.Fatalf("relayed %d and %d packets", relayedAB.Load(), relayedBA.Load())
	}
}

package tunnel

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/proxy"
)

// newNetstackPair joins two netstack tunnels over loopback: no root needed.
func newNetstackPair(t *testing.T) (a, b *Tunnel) {
	t.Helper()
	mk := func(n string) *Tunnel {
		tu, err := New(Options{Netstack: true, PrivateKey: newKey(t),
			Addresses: []netip.Prefix{netip.MustParsePrefix("10.77.0." + n + "/32"), netip.MustParsePrefix("fd77::" + n + "/128")}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tu.Close() })
		return tu
	}
	a, b = mk("1"), mk("2")
	peer := func(tu *Tunnel, n string) Peer {
		return Peer{
			PublicKey:  tu.opts.PrivateKey.Public(),
			Endpoint:   netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tu.ListenPort()),
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.77.0." + n + "/32"), netip.MustParsePrefix("fd77::" + n + "/128")},
		}
	}
	if err := a.SetPeers([]Peer{peer(b, "2")}); err != nil {
		t.Fatal(err)
	}
	if err := b.SetPeers([]Peer{peer(a, "1")}); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func TestNetstackLoopback(t *testing.T) {
	a, b := newNetstackPair(t)
	if got := poolLimit(a.dev); got != messageBuffers {
		t.Fatalf("message buffer pool capped at %d, want %d", got, messageBuffers)
	}
	if got := a.dev.BatchSize(); got != batchSize {
		t.Fatalf("device batch size %d, want %d", got, batchSize)
	}
	// An upper bound only: a stall is no progress for stallAfter (below),
	// which holds under the race detector too.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	ln, err := b.Listen("tcp", netip.MustParseAddrPort("10.77.0.2:7000"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A bulk transfer much larger than the capped pools: it must neither
	// stall nor corrupt.
	const size = 48 << 20
	var received atomic.Int64
	sums := make(chan [32]byte, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				h := sha256.New()
				io.Copy(io.MultiWriter(h, counter{&received}), c)
				var s [32]byte
				copy(s[:], h.Sum(nil))
				sums <- s
			}()
		}
	}()
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	c, err := a.DialContext(dctx, "tcp", "10.77.0.2:7000")
	dcancel()
	if err != nil {
		t.Fatal(err)
	}
	stall, stalled := context.WithCancelCause(ctx)
	defer stalled(nil)
	go watchProgress(stall, stalled, &received)
	context.AfterFunc(stall, func() { c.Close() })
	h := sha256.New()
	start := time.Now()
	src := io.TeeReader(io.LimitReader(pattern{}, size), h)
	if _, err := io.Copy(c, src); err != nil {
		t.Fatal(err, context.Cause(stall))
	}
	c.Close()
	select {
	case s := <-sums:
		var want [32]byte
		copy(want[:], h.Sum(nil))
		if s != want {
			t.Fatal("data corrupted in transit")
		}
	case <-stall.Done():
		t.Fatal("transfer stalled: ", context.Cause(stall))
	}
	t.Logf("%d MiB through two netstacks in %v", size>>20, time.Since(start))

	// SOCKS5 on loopback into the overlay, IPv6 this time.
	ln6, err := b.Listen("tcp", netip.MustParseAddrPort("[fd77::2]:7001"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln6.Close()
	go func() {
		c, err := ln6.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- a.ServeSOCKS5Listener(sctx, sln) }()
	d, err := proxy.SOCKS5("tcp", sln.Addr().String(), nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := d.(proxy.ContextDialer).DialContext(ctx, "tcp", "[fd77::2]:7001")
	if err != nil {
		t.Fatal(err)
	}
	pc.Write([]byte("echo me"))
	buf := make([]byte, 7)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(pc, buf); err != nil || string(buf) != "echo me" {
		t.Fatalf("echo through SOCKS5: %q %v", buf, err)
	}
	pc.Close()
	scancel()
	if err := <-served; err != nil {
		t.Errorf("ServeSOCKS5 returned %v after cancel", err)
	}

	for _, dst := range []string{"10.77.0.2", "fd77::2"} {
		rtt, err := a.Ping(ctx, netip.MustParseAddr(dst))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ping %s: %v", dst, rtt)
	}
	st, err := a.Stats()
	if err != nil || len(st) != 1 || st[0].TxBytes < size || st[0].LastHandshake.IsZero() {
		t.Fatalf("stats %+v %v", st, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Done():
	default:
		t.Error("Done not closed after Close")
	}
	if err := a.SetPeers(nil); err == nil {
		t.Error("SetPeers after Close succeeded")
	}
}

// pattern is an endless, not too compressible byte stream.
type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return len(p), nil
}

type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// stallAfter is how long a transfer may go without progress.
const stallAfter = 10 * time.Second

// watchProgress cancels ctx when n has not grown for stallAfter.
func watchProgress(ctx context.Context, cancel context.CancelCauseFunc, n *atomic.Int64) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, since := n.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if v := n.Load(); v != last {
				last, since = v, now
			} else if now.Sub(since) >= stallAfter {
				cancel(fmt.Errorf("no progress for %v after %d bytes", stallAfter, v))
				return
			}
		}
	}
}

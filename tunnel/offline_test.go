package tunnel

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// Packets for a peer without a session wait in its staged queue (up to 128
// reads' worth each), holding pool buffers. With the pool capped, floods
// towards several offline peers must not stall the traffic to the others.
func TestOfflinePeersFlood(t *testing.T) {
	a, b := newNetstackPair(t)
	peers := []Peer{{PublicKey: b.opts.PrivateKey.Public(),
		Endpoint:   netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.ListenPort()),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.77.0.2/32")}}}
	offline := []string{"10.77.0.9", "10.77.0.10", "10.77.0.11"}
	for _, ip := range offline {
		peers = append(peers, Peer{PublicKey: newKey(t).Public(), Endpoint: netip.MustParseAddrPort("127.0.0.1:9"),
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(ip), 32)}})
	}
	if err := a.SetPeers(peers); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	online := netip.MustParseAddr("10.77.0.2")
	if _, err := a.Ping(ctx, online); err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for _, ip := range offline {
		c, err := a.DialContext(ctx, "udp", ip+":5000")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		conns = append(conns, c)
	}
	probe, err := newPoolProbe(a.dev)
	if err != nil {
		t.Fatal(err)
	}
	// The floods must drain the pool, or the guard has nothing to do.
	least := make(chan int)
	stop := make(chan struct{})
	go func() {
		m := probe.free()
		for {
			select {
			case <-stop:
				least <- m
				return
			case <-time.After(time.Millisecond):
				m = min(m, probe.free())
			}
		}
	}()
	payload := make([]byte, 200)
	for _, c := range conns {
		for range 200 {
			if _, err := c.Write(payload); err != nil {
				t.Fatalf("flood: %v", err)
			}
		}
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	if m := <-least; m >= guardSlack {
		t.Fatalf("the floods left %d of %d buffers free at least: the pool was never short", m, probe.max)
	} else {
		t.Logf("buffers free during the floods: %d of %d at least", m, probe.max)
	}
	start := time.Now()
	for range 5 {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		_, err = a.Ping(pctx, online)
		pcancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("online peer unreachable %v after flooding offline ones: %v", time.Since(start), err)
	}
	t.Logf("online peer reachable %v after the floods", time.Since(start))
}

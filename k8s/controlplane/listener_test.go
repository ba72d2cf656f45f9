package controlplane

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestMultiListener(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	if ipv6LoopbackUsable() {
		addrs = append(addrs, netip.IPv6Loopback())
	}
	ln, err := listenAll(addrs, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Port 0 gives each socket its own port: dial each.
	for _, l := range ln.ls {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		a, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
		c.Close()
	}

	// A socket that fails makes the listener fail, with its error.
	ln.ls[len(ln.ls)-1].Close()
	select {
	case <-ln.Failed():
	case <-time.After(5 * time.Second):
		t.Fatal("a failed socket went unnoticed")
	}
	if _, err := ln.Accept(); err == nil || ln.Err() == nil {
		t.Fatalf("Accept after a failure: %v (Err %v)", err, ln.Err())
	}

	// Close is not a failure.
	ln2, err := listenAll(addrs[:1], 0)
	if err != nil {
		t.Fatal(err)
	}
	ln2.Close()
	if _, err := ln2.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	time.Sleep(50 * time.Millisecond)
	if ln2.Err() != nil {
		t.Fatalf("Close counted as a failure: %v", ln2.Err())
	}
}

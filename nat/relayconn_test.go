package nat

import (
	"net"
	"testing"
	"time"
)

// A TURN client's socket hears its server, and no one else.
func TestRelaySocketHearsOnlyItsServer(t *testing.T) {
	hn, err := newHostNet(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := hn.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	server, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	stranger, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := c.WriteTo([]byte("allocate"), server.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.WriteTo([]byte("forged data indication"), c.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the stranger's packet first in the queue
	if _, err := server.WriteTo([]byte("allocated"), c.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 100)
	n, from, err := c.ReadFrom(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:n]) != "allocated" || from.String() != server.LocalAddr().String() {
		t.Errorf("read %q from %v, want the server's answer", b[:n], from)
	}
}

package nat

import (
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/pion/turn/v5"
)

// A relay sends only to addresses of the Internet: never to loopback,
// private, link-local or shared (CGNAT) addresses, nor to the ranges the
// anchor forbids (the cluster's overlay, pods, Services).
func TestRelayAllowed(t *testing.T) {
	forbidden := []netip.Prefix{netip.MustParsePrefix("10.77.0.0/16"), netip.MustParsePrefix("fd4b:357d:e614::/64")}
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"203.0.113.7", true}, {"198.51.100.1", true}, {"2001:db8::7", true}, {"8.8.8.8", true},
		{"127.0.0.1", false}, {"::1", false}, {"192.168.1.2", false}, {"10.0.0.1", false}, {"172.16.0.1", false},
		{"fd00::1", false}, {"169.254.1.1", false}, {"fe80::1", false}, {"100.64.0.1", false}, {"0.0.0.0", false},
		{"224.0.0.1", false}, {"10.77.3.4", false}, {"fd4b:357d:e614::5", false},
	} {
		if got := RelayAllowed(netip.MustParseAddr(c.addr), forbidden); got != c.ok {
			t.Errorf("relay to %s allowed: %v, want %v", c.addr, got, c.ok)
		}
	}
}

// Through a real TURN allocation: a permission (what a relay needs before
// it sends) to loopback or a forbidden range is refused by the server; to
// an Internet address it is granted.
func TestServerRefusesInternalPeers(t *testing.T) {
	probe, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.LocalAddr().(*net.UDPAddr).Port
	probe.Close()
	const secret = "s3cret"
	srv, err := NewServer(ServerOptions{
		PublicIP: net.ParseIP("127.0.0.1"), Port: port, Realm: "test", Secret: secret,
		MinPort: 40000, MaxPort: 40100,
		Forbidden: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/16")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	creds, err := NewCredentials(secret, "home-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr, TURNServerAddr: addr, Username: creds.Username, Password: creds.Password,
		Realm: "test", Conn: conn,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	for _, c := range []struct {
		peer string
		ok   bool
	}{{"203.0.113.9:9", true}, {"127.0.0.1:22", false}, {"10.77.0.1:51821", false}, {"192.168.1.1:80", false}} {
		to, _ := net.ResolveUDPAddr("udp4", c.peer)
		_, err := relay.WriteTo([]byte("hello"), to)
		if (err == nil) != c.ok {
			t.Errorf("relay to %s: %v, want allowed %v", c.peer, err, c.ok)
		}
	}
}

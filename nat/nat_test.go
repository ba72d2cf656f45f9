package nat

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

func TestBindingResponse(t *testing.T) {
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	from := netip.MustParseAddrPort("203.0.113.7:41641")
	raw, ok := BindingResponse(req.Raw, from)
	if !ok {
		t.Fatal("binding request not answered")
	}
	resp := &stun.Message{Raw: raw}
	if err := resp.Decode(); err != nil || resp.Type != stun.BindingSuccess || resp.TransactionID != req.TransactionID {
		t.Fatalf("response %v %v", resp, err)
	}
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(resp); err != nil || xor.Port != 41641 || !xor.IP.Equal(net.ParseIP("203.0.113.7")) {
		t.Fatalf("mapped %v %v", xor, err)
	}
	for _, bad := range [][]byte{nil, []byte("hello"), {1, 0, 0, 0, 1, 2, 3, 4}, stun.MustBuild(stun.TransactionID, stun.BindingSuccess).Raw} {
		if _, ok := BindingResponse(bad, from); ok {
			t.Errorf("answered %x", bad)
		}
	}
}

func TestCredentials(t *testing.T) {
	secret := TURNSecret([]byte("cluster signing key"))
	if secret == TURNSecret([]byte("another cluster")) {
		t.Fatal("two clusters share a TURN secret")
	}
	c, err := NewCredentials(secret, "home-a", []string{"turn:203.0.113.1:3478?transport=udp"})
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(c.Expires) < CredentialTTL-time.Minute || c.Username[len(c.Username)-7:] != ":home-a" {
		t.Fatalf("credentials %+v", c)
	}
	check := func(secret string) bool {
		_, key, ok := turn.LongTermTURNRESTAuthHandler(secret, nil)(&turn.RequestAttributes{Username: c.Username, Realm: "demo"})
		return ok && string(key) == string(turn.GenerateAuthKey(c.Username, "demo", c.Password))
	}
	if !check(secret) {
		t.Fatal("the server refuses its own credentials")
	}
	if check(TURNSecret([]byte("another cluster"))) {
		t.Fatal("another cluster's server accepts them")
	}
}

func TestHostNetSkipsOverlay(t *testing.T) {
	h := &hostNet{skip: []netip.Prefix{netip.MustParsePrefix("10.77.0.0/16"), netip.MustParsePrefix("fd00:1::/64")}, skipIfaces: []string{"hepto0"}}
	for ip, keep := range map[string]bool{"10.77.0.2": false, "fd00:1::2": false, "192.168.1.2": true, "::ffff:10.77.0.9": false, "2001:db8::1": true} {
		if got := h.keepIP(net.ParseIP(ip)); got != keep {
			t.Errorf("%s: keep %v", ip, got)
		}
	}
	if h.keepIface("hepto0") || !h.keepIface("eth0") {
		t.Error("interface filter")
	}
}

func TestPacketConn(t *testing.T) {
	var sent []netip.AddrPort
	c := NewPacketConn(51820, func(b []byte, to netip.AddrPort) error { sent = append(sent, to); return nil })
	from := netip.MustParseAddrPort("192.0.2.1:3478")
	pkt := []byte("stun")
	c.Deliver(pkt, from)
	pkt[0] = 'X' // Deliver copied it
	buf := make([]byte, 16)
	n, got, err := c.ReadFromAddrPort(buf)
	if err != nil || string(buf[:n]) != "stun" || got != from {
		t.Fatalf("read %q %v %v", buf[:n], got, err)
	}
	if _, err := c.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP("::ffff:192.0.2.9"), Port: 1}); err != nil || sent[0].String() != "192.0.2.9:1" {
		t.Fatalf("write: %v %v", sent, err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, _, err := c.ReadFrom(buf); err == nil {
		t.Fatal("read past the deadline")
	}
	c.Close()
	if _, err := c.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP("192.0.2.9"), Port: 1}); err == nil {
		t.Fatal("write after close")
	}
}

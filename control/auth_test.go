package control

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/membership"
)

// A signed call reaches its handler with its Caller only when it was
// signed by the key of the member at its address, for this node, with
// this method, URI and body, lately; an unsigned call has no Caller.
func TestSignedCalls(t *testing.T) {
	serverKey, memberKey, otherKey := newKey(t), newKey(t), newKey(t)
	serverIP, memberIP := netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("127.0.0.1")
	members := map[netip.Addr]membership.Node{
		serverIP: {Name: "anchor", PublicKey: serverKey.Public(), OverlayIPs: []netip.Addr{serverIP}},
		memberIP: {Name: "pi-kitchen", PublicKey: memberKey.Public(), OverlayIPs: []netip.Addr{memberIP}},
	}
	lookup := func(a netip.Addr) (membership.Node, bool) { n, ok := members[a]; return n, ok }
	server := &Identity{Key: serverKey, Member: lookup}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/echo", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		if err := Decode(r.Body, &body); err != nil {
			WriteError(w, BadRequest(err))
			return
		}
		n, err := RequireCaller(r, "echo")
		if err != nil {
			WriteError(w, err)
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"caller": n.Name})
	})
	srv := httptest.NewServer(server.Handler(mux))
	defer srv.Close()
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	call := func(id *Identity) (string, error) {
		c := NewClient(dial)
		c.Identity = id
		var out map[string]string
		err := c.Post(context.Background(), serverIP, "/v1/echo", map[string]string{"hello": "world"}, &out)
		return out["caller"], err
	}

	if who, err := call(&Identity{Key: memberKey, Member: lookup}); err != nil || who != "pi-kitchen" {
		t.Errorf("the member's hepto: caller %q, %v", who, err)
	}
	if _, err := call(nil); !IsPermanent(err) {
		t.Errorf("unsigned: %v, want a refusal", err)
	}
	if _, err := call(&Identity{Key: otherKey, Member: lookup}); !IsPermanent(err) {
		t.Errorf("another key from the member's address: %v, want a refusal", err)
	}

	// Hand-made requests: a signature for another call, or too old.
	body := []byte(`{"hello":"world"}`)
	signedFor := func(method, path string, b []byte, at time.Time) *http.Request {
		r, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(b))
		id := &Identity{Key: memberKey}
		if err := id.Sign(r, serverKey.Public(), b); err != nil {
			t.Fatal(err)
		}
		if !at.IsZero() { // re-sign with another time
			t0 := at.Unix()
			mac, _ := MAC(memberKey, serverKey.Public(), macRequest, signed(method, r.URL.RequestURI(), t0, r.Header.Get(HeaderBodyHash)))
			r.Header.Set(HeaderSignature, strconv.FormatInt(t0, 10)+"."+base64.RawURLEncoding.EncodeToString(mac))
		}
		return r
	}
	for _, c := range []struct {
		name   string
		req    func() *http.Request
		status int
	}{
		{"as signed", func() *http.Request { return signedFor("POST", "/v1/echo", body, time.Time{}) }, http.StatusOK},
		{"another body", func() *http.Request {
			r := signedFor("POST", "/v1/echo", body, time.Time{})
			other := []byte(`{"hello":"there"}`)
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(other)), int64(len(other))
			return r
		}, http.StatusBadRequest},
		{"another path", func() *http.Request {
			r := signedFor("POST", "/v1/other", body, time.Time{})
			r.URL.Path = "/v1/echo"
			return r
		}, http.StatusForbidden},
		{"ten minutes old", func() *http.Request { return signedFor("POST", "/v1/echo", body, time.Now().Add(-10*time.Minute)) }, http.StatusForbidden},
		{"garbled", func() *http.Request {
			r := signedFor("POST", "/v1/echo", body, time.Time{})
			r.Header.Set(HeaderSignature, "yesterday")
			return r
		}, http.StatusForbidden},
	} {
		resp, err := http.DefaultClient.Do(c.req())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.status)
		}
	}
}

func newKey(t testing.TB) key.Private {
	t.Helper()
	k, err := key.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// FuzzSignature: whatever the signature headers hold, verifying never
// panics and never names a caller for a call its key did not sign.
func FuzzSignature(f *testing.F) {
	serverKey, memberKey := newKey(f), newKey(f)
	member := membership.Node{Name: "pi", PublicKey: memberKey.Public(), OverlayIPs: []netip.Addr{netip.MustParseAddr("10.77.0.2")}}
	id := &Identity{Key: serverKey, Member: func(a netip.Addr) (membership.Node, bool) { return member, a == member.OverlayIPs[0] }}
	f.Add("1700000000.AAAA", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	f.Add("", "")
	f.Add(".", "zz")
	f.Fuzz(func(t *testing.T, sig, bodyHash string) {
		r := httptest.NewRequest("POST", "/v1/kubernetes/node-certs", nil)
		r.RemoteAddr = "10.77.0.2:40000"
		r.Header.Set(HeaderSignature, sig)
		r.Header.Set(HeaderBodyHash, bodyHash)
		if n, why := id.verify(r); why == "" {
			t.Errorf("%q %q verified as %s", sig, bodyHash, n.Name)
		}
	})
}

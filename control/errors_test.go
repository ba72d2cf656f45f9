package control

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// Refusals keep their kind across the wire: a caller tells a permanent
// refusal from one it should retry.
func TestErrorsCrossTheWire(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /refused", func(w http.ResponseWriter, r *http.Request) { WriteError(w, Refused("token already used")) })
	mux.HandleFunc("POST /disk", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, errors.New("write anchor.json: no space left"))
	})
	mux.HandleFunc("POST /old", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusForbidden, map[string]string{"error": "line one\nline two"})
	})
	mux.HandleFunc("POST /ok", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]int
		if err := Decode(r.Body, &in); err != nil {
			WriteError(w, BadRequest(err))
			return
		}
		WriteJSON(w, http.StatusOK, map[string]int{"n": in["n"] + 1})
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	c := NewClient(func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	})
	node := netip.MustParseAddr("10.77.0.1")
	ctx := context.Background()

	err := c.Post(ctx, node, "/refused", struct{}{}, nil)
	if !IsPermanent(err) || err.Error() != "token already used" {
		t.Errorf("refused: %v", err)
	}
	err = c.Post(ctx, node, "/disk", struct{}{}, nil)
	var ce *Error
	if IsPermanent(err) || !errors.As(err, &ce) || ce.Code != CodeUnavailable || ce.Status != http.StatusServiceUnavailable {
		t.Errorf("a failure on the other side: %v, want Unavailable", err)
	}
	err = c.Post(ctx, node, "/old", struct{}{}, nil)
	if !IsPermanent(err) || err.Error() != "line one" {
		t.Errorf("a refusal without a code: %v", err)
	}
	var out map[string]int
	if err := c.Post(ctx, node, "/ok", map[string]int{"n": 1}, &out); err != nil || out["n"] != 2 {
		t.Errorf("ok: %v %v", out, err)
	}
	if IsPermanent(errors.New("connection refused")) {
		t.Error("a transport error is not a refusal")
	}
}

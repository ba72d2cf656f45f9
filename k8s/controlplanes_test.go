package k8s

import (
	"testing"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/key"
)

// TestSignedCalls: a control-plane call verifies only from the member
// whose key made it, unchanged, lately, and for its own kind.
func TestSignedCalls(t *testing.T) {
	a, _ := key.NewPrivate()
	b, _ := key.NewPrivate()
	other, _ := key.NewPrivate()
	req := control.EtcdRemoveRequest{Name: "home-a"}
	if err := sign(a, b.Public(), macRemove, &req, &req.Signed); err != nil {
		t.Fatal(err)
	}
	if !verified(b, a.Public(), macRemove, &req, &req.Signed) {
		t.Fatal("a signed request does not verify")
	}
	if verified(b, other.Public(), macRemove, &req, &req.Signed) {
		t.Error("verified as another member's")
	}
	if verified(b, a.Public(), macJoin, &req, &req.Signed) {
		t.Error("verified as another kind of call")
	}
	changed := req
	changed.Name = "home-b"
	if verified(b, a.Public(), macRemove, &changed, &changed.Signed) {
		t.Error("a changed request verifies")
	}
	old := control.EtcdRemoveRequest{Name: "home-a"}
	old.Time = time.Now().Add(-time.Hour).Unix()
	if err := sign(a, b.Public(), macRemove, &old, &old.Signed); err != nil {
		t.Fatal(err)
	}
	old.Time = time.Now().Add(-time.Hour).Unix() // sign sets the time: age it after
	if verified(b, a.Public(), macRemove, &old, &old.Signed) {
		t.Error("an old (or re-timed) request verifies")
	}
	var unsigned control.EtcdRemoveRequest
	unsigned.Name = "home-a"
	if verified(b, a.Public(), macRemove, &unsigned, &unsigned.Signed) {
		t.Error("an unsigned request verifies")
	}
}

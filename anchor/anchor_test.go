package anchor

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/state"
)

// newAnchor is an anchor of a fresh cluster, with its state in a temporary
// directory, as `hepto init` leaves it.
func newAnchor(t *testing.T) (*Anchor, state.Dir) {
	t.Helper()
	c, sk, err := membership.NewCluster("demo", membership.Networks{})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := key.NewPrivate()
	self, _ := membership.NewNode(c.Networks, 1, "anchor", k.Public())
	self.Roles, self.Endpoint = []string{membership.RoleAnchor}, "203.0.113.1:51820"
	s, _ := membership.Sign(sk.PrivateKey, membership.KindNode, self)
	st := state.Dir(t.TempDir())
	store, err := membership.NewStore(c, membership.NewSet(s), self, func(s membership.Set) error { return st.Write(state.MembersFile, s, 0o644) })
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{State: st, Store: store, Self: self, Signer: sk.PrivateKey})
	if err != nil {
		t.Fatal(err)
	}
	return a, st
}

// issued is a token as sent (Raw) and as read.
type issued struct {
	membership.Token
	Raw string
}

func issue(t *testing.T, a *Anchor, name string) issued {
	t.Helper()
	s, _, err := a.IssueToken(TokenOptions{Name: name, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := membership.ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	return issued{tok, s}
}

func TestAdmit(t *testing.T) {
	a, _ := newAnchor(t)
	tok := issue(t, a, "home-a")
	if len(a.JoinPeers(time.Now())) != 1 {
		t.Fatal("no join peer for the token")
	}
	k, _ := key.NewPrivate()
	resp, err := a.Admit(control.JoinRequest{Token: tok.Raw, PublicKey: k.Public()}, tok.JoinIP)
	if err != nil {
		t.Fatal(err)
	}
	m, err := membership.Open(resp.Membership, a.cluster())
	if err != nil || m.Version != 2 {
		t.Fatalf("membership v%d: %v", m.Version, err)
	}
	if n, ok := a.o.Store.Current().Find("home-a"); !ok || n.Index != 2 || n.PublicKey != k.Public() {
		t.Fatalf("store: %+v %v", n, ok)
	}
	// A retry after a lost answer gets the same record.
	again, err := a.Admit(control.JoinRequest{Token: tok.Raw, PublicKey: k.Public()}, tok.JoinIP)
	if err != nil || string(again.Node.Payload) != string(resp.Node.Payload) {
		t.Fatalf("retry: %v", err)
	}
	// The used token's join peer stays for a retry, then goes.
	if len(a.JoinPeers(time.Now())) != 1 {
		t.Error("join peer gone at once: a retry after a lost answer would meet silence")
	}
	if n := len(a.JoinPeers(time.Now().Add(UsedGrace + time.Second))); n != 0 {
		t.Errorf("%d join peers after the used token's grace, want none", n)
	}
	if next, ok := nextExpiry(*a.issued.Load(), time.Now()); !ok || time.Until(next) > UsedGrace {
		t.Errorf("next join peer change at %v (%v), want within %s", next, ok, UsedGrace)
	}
}

// A token lasts at most MaxTokenTTL.
func TestTokenLifetime(t *testing.T) {
	a, _ := newAnchor(t)
	if _, _, err := a.IssueToken(TokenOptions{Name: "home-a", TTL: MaxTokenTTL + time.Hour}); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("a token of %s: %v, want a refusal", MaxTokenTTL+time.Hour, err)
	}
	if _, _, err := a.IssueToken(TokenOptions{Name: "home-a", TTL: MaxTokenTTL}); err != nil {
		t.Errorf("a token of %s: %v", MaxTokenTTL, err)
	}
}

func TestAdmitRefusals(t *testing.T) {
	a, _ := newAnchor(t)
	tok := issue(t, a, "home-a")
	k1, _ := key.NewPrivate()
	k2, _ := key.NewPrivate()
	other, _ := newAnchor(t)
	foreign := issue(t, other, "home-a")
	for _, tc := range []struct {
		name string
		req  control.JoinRequest
		want string
	}{
		{"malformed token", control.JoinRequest{Token: "hepto1.nope", PublicKey: k1.Public()}, "token"},
		{"another cluster's token", control.JoinRequest{Token: foreign.Raw, PublicKey: k1.Public()}, "cluster"},
	} {
		_, err := a.Admit(tc.req, tok.JoinIP)
		if !control.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a refusal about %q", tc.name, err, tc.want)
		}
	}
	if _, err := a.Admit(control.JoinRequest{Token: tok.Raw, PublicKey: k1.Public()}, a.o.Self.OverlayIPs[1]); !control.IsPermanent(err) {
		t.Errorf("from another address: %v", err)
	}
	if _, err := a.Admit(control.JoinRequest{Token: tok.Raw, PublicKey: k1.Public()}, tok.JoinIP); err != nil {
		t.Fatal(err)
	}
	_, err := a.Admit(control.JoinRequest{Token: tok.Raw, PublicKey: k2.Public()}, tok.JoinIP)
	if !control.IsPermanent(err) || !strings.Contains(err.Error(), "already used") {
		t.Errorf("second use by another key: %v", err)
	}
}

// A failure to write on the anchor's side is not the joining node's fault:
// it is Unavailable (the node retries), and nothing is half-done.
func TestAdmitDiskFailureIsTransient(t *testing.T) {
	a, st := newAnchor(t)
	tok := issue(t, a, "home-a")
	// membership.json as a directory with something in it: the rename over
	// it fails.
	os.Remove(st.Path(state.MembersFile))
	if err := os.MkdirAll(filepath.Join(st.Path(state.MembersFile), "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	k, _ := key.NewPrivate()
	_, err := a.Admit(control.JoinRequest{Token: tok.Raw, PublicKey: k.Public()}, tok.JoinIP)
	var ce *control.Error
	if !errors.As(err, &ce) || !ce.Temporary() {
		t.Fatalf("disk failure: %v, want Unavailable", err)
	}
	if a.o.Store.Current().Version != 1 {
		t.Fatal("the membership moved though it was not saved")
	}
	os.RemoveAll(st.Path(state.MembersFile))
	if _, err := a.Admit(control.JoinRequest{Token: tok.Raw, PublicKey: k.Public()}, tok.JoinIP); err != nil {
		t.Fatalf("retry once the disk works: %v", err)
	}
}

// TestRemove: a removed node leaves the membership for good: its key
// cannot join again, its index is not given out within the quarantine,
// and the anchor cannot remove itself.
func TestRemove(t *testing.T) {
	a, st := newAnchor(t)
	tok := issue(t, a, "home-a")
	k, _ := key.NewPrivate()
	if _, err := a.Admit(control.JoinRequest{Token: tok.Raw, PublicKey: k.Public()}, tok.JoinIP); err != nil {
		t.Fatal(err)
	}
	ts, err := a.Remove(t.Context(), "home-a")
	if err != nil || ts.Index != 2 || ts.PublicKey != k.Public() || ts.By != "anchor" {
		t.Fatalf("remove: %+v %v", ts, err)
	}
	m := a.o.Store.Current()
	if _, ok := m.Find("home-a"); ok {
		t.Fatal("home-a still a member")
	}
	if _, err := a.Remove(t.Context(), "home-a"); !errors.Is(err, ErrNoNode) {
		t.Fatalf("second removal: %v", err)
	}
	if _, err := a.Remove(t.Context(), "anchor"); !errors.Is(err, ErrSelf) {
		t.Fatalf("self removal: %v", err)
	}
	// On disk: a restart of the anchor still has the tombstone.
	var saved membership.Set
	if err := st.Read(state.MembersFile, &saved); err != nil {
		t.Fatal(err)
	}
	if m2, err := membership.Open(saved, a.cluster()); err != nil || len(m2.Removed) != 1 {
		t.Fatalf("saved set: %+v %v", m2, err)
	}
	// The same key with a fresh token: refused.
	tok2 := issue(t, a, "home-a")
	if _, err := a.Admit(control.JoinRequest{Token: tok2.Raw, PublicKey: k.Public()}, tok2.JoinIP); err == nil {
		t.Fatal("a removed key joined again")
	}
	// A new key gets a new index: 2 is in quarantine.
	k3, _ := key.NewPrivate()
	resp, err := a.Admit(control.JoinRequest{Token: tok2.Raw, PublicKey: k3.Public()}, tok2.JoinIP)
	if err != nil {
		t.Fatal(err)
	}
	n, err := membership.OpenNode(resp.Node, a.cluster())
	if err != nil || n.Index != 3 {
		t.Fatalf("index after a removal: %d %v", n.Index, err)
	}
}

// TestControlPlaneToken: a --control-plane token admits a node with the
// control-plane role, and no other.
func TestControlPlaneToken(t *testing.T) {
	a, _ := newAnchor(t)
	s, _, err := a.IssueToken(TokenOptions{Name: "cp2", ControlPlane: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := membership.ParseToken(s)
	if err != nil || !slices.Equal(tok.Roles, []string{membership.RoleControlPlane}) {
		t.Fatalf("token %+v: %v", tok, err)
	}
	k, _ := key.NewPrivate()
	if _, err := a.Admit(control.JoinRequest{Token: s, PublicKey: k.Public()}, tok.JoinIP); err != nil {
		t.Fatal(err)
	}
	n, ok := a.o.Store.Current().Find("cp2")
	if !ok || !n.IsControlPlane() || n.IsAnchor() {
		t.Fatalf("admitted %+v (found %v): want a control-plane node, not an anchor", n, ok)
	}
}

// TestFabricToken: a --fabric token admits a node that runs no
// Kubernetes; it cannot be a control-plane node too.
func TestFabricToken(t *testing.T) {
	a, _ := newAnchor(t)
	if _, _, err := a.IssueToken(TokenOptions{Name: "shed", Fabric: true, ControlPlane: true}); err == nil {
		t.Fatal("a token for a control-plane node of the fabric only was issued")
	}
	s, _, err := a.IssueToken(TokenOptions{Name: "shed", Fabric: true, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := membership.ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := key.NewPrivate()
	if _, err := a.Admit(control.JoinRequest{Token: s, PublicKey: k.Public()}, tok.JoinIP); err != nil {
		t.Fatal(err)
	}
	n, ok := a.o.Store.Current().Find("shed")
	if !ok || n.RunsKubernetes() || n.IsControlPlane() {
		t.Fatalf("admitted %+v (found %v): want a node that runs no Kubernetes", n, ok)
	}
}

// TestAdmitAnchor: a node admitted as an anchor gets the cluster key and
// the upper half of the admitting anchor's index range; the two then admit
// at once without a shared index, and their memberships converge.
func TestAdmitAnchor(t *testing.T) {
	a, _ := newAnchor(t)
	if _, _, err := a.IssueToken(TokenOptions{Name: "vps2", Anchor: true}); err == nil {
		t.Fatal("anchor token without an endpoint")
	}
	s, _, err := a.IssueToken(TokenOptions{Name: "vps2", Anchor: true, Endpoint: "203.0.113.9:51820", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := membership.ParseToken(s)
	if err != nil || tok.Endpoint != "203.0.113.9:51820" || tok.Anchors[0].Name != "anchor" {
		t.Fatalf("token %+v: %v", tok, err)
	}
	k2, _ := key.NewPrivate()
	resp, err := a.Admit(control.JoinRequest{Token: s, PublicKey: k2.Public()}, tok.JoinIP)
	if err != nil {
		t.Fatal(err)
	}
	if resp.SigningKey == nil || !resp.SigningKey.PrivateKey.Equal(a.o.Signer) {
		t.Fatal("no signing key for the new anchor")
	}
	c := a.cluster()
	vps2, err := membership.OpenNode(resp.Node, c)
	if err != nil || !vps2.IsAnchor() || vps2.Endpoint != "203.0.113.9:51820" || vps2.Indexes == nil || *vps2.Indexes != (membership.IndexRange{First: 128, Last: 254}) {
		t.Fatalf("new anchor's record %+v: %v", vps2, err)
	}
	if r := a.self().IndexRange(c.Networks); r != (membership.IndexRange{First: 1, Last: 127}) {
		t.Fatalf("admitting anchor's range %v", r)
	}
	// The fixture's anchor is a record of before the control-plane role:
	// it keeps the control plane through its next revision.
	if !a.self().IsControlPlane() || vps2.IsControlPlane() {
		t.Fatalf("control plane: admitting anchor %v, new anchor %v", a.self().IsControlPlane(), vps2.IsControlPlane())
	}

	// The second anchor, as it starts from the join's answer.
	st2 := state.Dir(t.TempDir())
	store2, err := membership.NewStore(c, resp.Membership, vps2, func(s membership.Set) error { return st2.Write(state.MembersFile, s, 0o644) })
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{State: st2, Store: store2, Self: vps2, Signer: resp.SigningKey.PrivateKey})
	if err != nil {
		t.Fatal(err)
	}
	// Both admit at once.
	admit := func(x *Anchor, name string) membership.Node {
		tk := issue(t, x, name)
		k, _ := key.NewPrivate()
		r, err := x.Admit(control.JoinRequest{Token: tk.Raw, PublicKey: k.Public()}, tk.JoinIP)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := membership.OpenNode(r.Node, c)
		return n
	}
	na, nb := admit(a, "home-a"), admit(b, "home-b")
	if na.Index != 3 || nb.Index != 128 {
		t.Fatalf("indexes %d and %d", na.Index, nb.Index)
	}
	if _, err := a.o.Store.Adopt(b.o.Store.Set()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.o.Store.Adopt(a.o.Store.Set()); err != nil {
		t.Fatal(err)
	}
	if a.o.Store.Digest() != b.o.Store.Digest() {
		t.Fatal("the anchors' sets differ after an exchange")
	}
	m := a.o.Store.Current()
	if len(m.Nodes) != 4 {
		t.Fatalf("merged membership %+v", m.Nodes)
	}
	if got := a.self().IndexRange(c.Networks); got.Last != 127 {
		t.Fatalf("range after the merge %v", got)
	}
}

// TestMergeTokens: books merge by ID, the earliest use wins, and a
// merge that adds nothing says so.
func TestMergeTokens(t *testing.T) {
	t1, t2 := time.Now(), time.Now().Add(time.Minute)
	k1, _ := key.NewPrivate()
	k2, _ := key.NewPrivate()
	ours := []issuedToken{{ID: "a"}, {ID: "b", UsedAt: &t2, UsedBy: k2.Public()}}
	theirs := []issuedToken{{ID: "b", UsedAt: &t1, UsedBy: k1.Public()}, {ID: "c"}}
	if !mergeTokens(&ours, theirs) {
		t.Fatal("merge reported no change")
	}
	if len(ours) != 3 || ours[1].UsedBy != k1.Public() || !ours[1].UsedAt.Equal(t1) {
		t.Fatalf("merged %+v", ours)
	}
	if mergeTokens(&ours, theirs) || mergeTokens(&ours, []issuedToken{{ID: "b", UsedAt: &t2, UsedBy: k2.Public()}}) {
		t.Fatal("a merge that adds nothing changed the book")
	}
}

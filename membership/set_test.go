package membership

import (
	"encoding/json"
	"testing"
	"time"
)

// TestSetConverges: two anchors' additions and a removal, merged in every
// order and grouping, give one membership.
func TestSetConverges(t *testing.T) {
	f := newSetFixture(t)
	a, b, c := f.node(t, 2, "home-a"), f.node(t, 130, "home-b"), f.node(t, 3, "home-c")
	base := f.set(t)
	fromA := Merge(base, NewSet(f.sign(t, a), f.sign(t, c)))
	fromB := Merge(base, NewSet(f.sign(t, b)))
	rm := NewSet(f.remove(t, c, time.Now()))
	orders := []Set{
		Merge(fromA, fromB, rm),
		Merge(rm, fromB, fromA),
		Merge(Merge(fromB, rm), fromA),
		Merge(fromA, Merge(rm, fromB), fromA), // duplicates too
	}
	var want string
	for i, s := range orders {
		m, err := Open(s, f.c)
		if err != nil {
			t.Fatal(err)
		}
		got := string(mustJSON(t, m))
		if i == 0 {
			want = got
			if len(m.Nodes) != 3 || m.Nodes[1].Name != "home-a" || m.Nodes[2].Name != "home-b" {
				t.Fatalf("nodes %+v", m.Nodes)
			}
			if _, gone := m.RemovedKey(c.PublicKey); !gone {
				t.Fatal("home-c not removed")
			}
		} else if got != want {
			t.Fatalf("order %d gives another membership:\n%s\n%s", i, got, want)
		}
		if s.Digest() != orders[0].Digest() {
			t.Fatalf("order %d: another digest", i)
		}
	}
}

// TestSetConflicts: two records for one name or one index keep the first
// to join; a removed key stays out even with a later record.
func TestSetConflicts(t *testing.T) {
	f := newSetFixture(t)
	early, late := f.node(t, 2, "home-a"), f.node(t, 2, "home-b")
	late.Joined = early.Joined.Add(time.Second)
	sameName := f.node(t, 5, "home-a")
	sameName.Joined = early.Joined.Add(time.Minute)
	m, err := Open(f.set(t, late, sameName, early), f.c)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) != 2 || m.Nodes[1].PublicKey != early.PublicKey {
		t.Fatalf("conflicts kept %+v", m.Nodes)
	}

	gone := f.node(t, 3, "home-c")
	again := gone
	again.Revision = 7
	m, err = Open(Merge(f.set(t, gone), NewSet(f.remove(t, gone, time.Now()), f.sign(t, again))), f.c)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Find("home-c"); ok {
		t.Fatal("a removed key came back with a later revision")
	}

	// A later revision of one key replaces the earlier record.
	anchor2 := f.self
	anchor2.Revision = 1
	anchor2.Indexes = &IndexRange{1, 128}
	m, err = Open(Merge(f.set(t), NewSet(f.sign(t, anchor2))), f.c)
	if err != nil {
		t.Fatal(err)
	}
	if m.Nodes[0].Indexes == nil || m.Nodes[0].Indexes.Last != 128 {
		t.Fatalf("revision not taken: %+v", m.Nodes[0])
	}
}

func TestFreeIndexQuarantine(t *testing.T) {
	f := newSetFixture(t)
	a, b := f.node(t, 2, "home-a"), f.node(t, 3, "home-b")
	now := time.Now()
	m, err := Open(Merge(f.set(t, a, b), NewSet(f.remove(t, a, now.Add(-time.Hour)))), f.c)
	if err != nil {
		t.Fatal(err)
	}
	if i, err := m.FreeIndex(1, 10, now); err != nil || i != 4 {
		t.Fatalf("index within the quarantine: %d %v", i, err)
	}
	if i, err := m.FreeIndex(1, 10, now.Add(Quarantine)); err != nil || i != 2 {
		t.Fatalf("index after the quarantine: %d %v", i, err)
	}
	if _, err := m.FreeIndex(2, 3, now); err == nil {
		t.Fatal("a full range gave an index")
	}
}

// TestSetReadsLegacyMembership: membership.json as it was before sets, one
// signed membership, opens as a set of that entry.
func TestSetReadsLegacyMembership(t *testing.T) {
	f := newSetFixture(t)
	n := f.node(t, 2, "home-a")
	old, err := SignMembership(f.sk.PrivateKey, Membership{Cluster: f.c.Name, Version: 4, Nodes: []Node{f.self, n}})
	if err != nil {
		t.Fatal(err)
	}
	var s Set
	if err := json.Unmarshal(mustJSON(t, old), &s); err != nil {
		t.Fatal(err)
	}
	m, err := Open(Merge(s, NewSet(f.remove(t, n, time.Now()))), f.c)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Nodes) != 1 || m.Nodes[0].Name != "anchor" || len(m.Removed) != 1 {
		t.Fatalf("legacy membership read as %+v", m)
	}
	if err := json.Unmarshal([]byte(`{}`), &s); err == nil {
		t.Fatal("an empty object read as a set")
	}
}

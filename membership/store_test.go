package membership

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hepto-net/hepto/key"
)

type setFixture struct {
	c    Cluster
	sk   SigningKey
	self Node
}

func newSetFixture(t testing.TB) setFixture {
	t.Helper()
	c, sk := testCluster(t, "demo")
	f := setFixture{c: c, sk: sk}
	f.self = f.node(t, 1, "anchor")
	f.self.Roles = []string{RoleAnchor}
	return f
}

func (f setFixture) node(t testing.TB, index int, name string) Node {
	t.Helper()
	k, _ := key.NewPrivate()
	n, err := NewNode(f.c.Networks, index, name, k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (f setFixture) sign(t testing.TB, n Node) Signed {
	t.Helper()
	s, err := Sign(f.sk.PrivateKey, KindNode, n)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f setFixture) remove(t testing.TB, n Node, at time.Time) Signed {
	t.Helper()
	s, err := SignTombstone(f.sk.PrivateKey, n, "anchor", at)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f setFixture) set(t testing.TB, nodes ...Node) Set {
	t.Helper()
	var es []Signed
	for _, n := range append([]Node{f.self}, nodes...) {
		es = append(es, f.sign(t, n))
	}
	return NewSet(es...)
}

func TestStoreAdopt(t *testing.T) {
	f := newSetFixture(t)
	var saved []int
	var mu sync.Mutex
	st, err := NewStore(f.c, f.set(t), f.self, func(s Set) error {
		mu.Lock()
		saved = append(saved, len(s.Entries))
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ch, cancel := st.Subscribe()
	defer cancel()
	<-ch // the initial value
	n2 := f.node(t, 2, "home-a")
	// A set that holds only the new record is enough: sets merge.
	if ok, err := st.Adopt(NewSet(f.sign(t, n2))); !ok || err != nil {
		t.Fatalf("adopt: %v %v", ok, err)
	}
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("subscriber not told")
	}
	if m := st.Current(); m.Version != 2 || len(m.Nodes) != 2 || m.Nodes[1].Name != "home-a" {
		t.Fatalf("current %+v", m)
	}
	before := st.Digest()
	if ok, err := st.Adopt(f.set(t)); ok || err != nil {
		t.Fatalf("a set already held: %v %v", ok, err)
	}
	if st.Digest() != before {
		t.Fatal("digest moved without a change")
	}
	if len(saved) != 1 || saved[0] != 2 {
		t.Fatalf("saved %v", saved)
	}
}

func TestStoreRefuses(t *testing.T) {
	f := newSetFixture(t)
	st, err := NewStore(f.c, f.set(t), f.self, func(Set) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	// Signed by another cluster's key.
	_, other := testCluster(t, "demo")
	forged, _ := Sign(other.PrivateKey, KindNode, f.node(t, 3, "intruder"))
	if ok, err := st.Adopt(NewSet(forged)); ok || !errors.Is(err, ErrBadSignature) {
		t.Errorf("forged record: %v %v", ok, err)
	}
	// One bad entry fails the whole set, good ones with it.
	if ok, err := st.Adopt(NewSet(f.sign(t, f.node(t, 4, "good")), forged)); ok || err == nil {
		t.Errorf("set with a forged entry: %v %v", ok, err)
	}
	// A record that takes our name and index with an earlier join: we would
	// lose the conflict, so the set is refused.
	usurper := f.node(t, 1, "anchor")
	usurper.Joined = f.self.Joined.Add(-time.Hour)
	if ok, err := st.Adopt(NewSet(f.sign(t, usurper))); ok || !errors.Is(err, ErrNotListed) {
		t.Errorf("set that ousts us: %v %v", ok, err)
	}
	if m := st.Current(); m.Version != 1 || len(m.Nodes) != 1 {
		t.Errorf("current moved: %+v", m)
	}
}

func TestStoreRemoved(t *testing.T) {
	f := newSetFixture(t)
	var saved Set
	st, err := NewStore(f.c, f.set(t), f.self, func(s Set) error { saved = s; return nil })
	if err != nil {
		t.Fatal(err)
	}
	ok, err := st.Adopt(NewSet(f.remove(t, f.self, time.Now())))
	var re *RemovedError
	if !ok || !errors.As(err, &re) || re.Tombstone.Name != "anchor" {
		t.Fatalf("removal of this node: %v %v", ok, err)
	}
	// Kept on disk, so that a restart says so too.
	if _, err := NewStore(f.c, saved, f.self, func(Set) error { return nil }); !errors.As(err, &re) {
		t.Fatalf("restart after removal: %v", err)
	}
}

func TestStorePersistFailureKeepsCurrent(t *testing.T) {
	f := newSetFixture(t)
	st, _ := NewStore(f.c, f.set(t), f.self, func(Set) error { return errors.New("disk full") })
	if ok, err := st.Adopt(f.set(t, f.node(t, 2, "home-a"))); ok || !errors.Is(err, ErrSave) {
		t.Fatalf("adopt with a failing disk: %v %v", ok, err)
	}
	if st.Current().Version != 1 {
		t.Fatal("a membership that was not saved became current")
	}
}

// TestStoreReadersDoNotWaitOnDisk: Current answers while Adopt is blocked
// in its write.
func TestStoreReadersDoNotWaitOnDisk(t *testing.T) {
	f := newSetFixture(t)
	release := make(chan struct{})
	inWrite := make(chan struct{})
	st, _ := NewStore(f.c, f.set(t), f.self, func(Set) error { close(inWrite); <-release; return nil })
	go st.Adopt(f.set(t, f.node(t, 2, "home-a")))
	<-inWrite
	done := make(chan uint64)
	go func() { done <- st.Current().Version }()
	select {
	case v := <-done:
		if v != 1 {
			t.Errorf("version %d before the write ended", v)
		}
	case <-time.After(time.Second):
		t.Fatal("Current waited on the disk")
	}
	close(release)
}

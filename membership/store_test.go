package membership

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hepto-net/hepto/key"
)

func storeFixture(t *testing.T) (Cluster, SigningKey, Node, func(v uint64, extra ...Node) Signed) {
	t.Helper()
	c, sk := testCluster(t, "demo")
	k, _ := key.NewPrivate()
	self, err := NewNode(c.Networks, 1, "anchor", k.Public())
	if err != nil {
		t.Fatal(err)
	}
	sign := func(v uint64, extra ...Node) Signed {
		s, err := SignMembership(sk.PrivateKey, Membership{Cluster: c.Name, Version: v, Issued: time.Now(), Nodes: append([]Node{self}, extra...)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return c, sk, self, sign
}

func TestStoreAdopt(t *testing.T) {
	c, _, self, sign := storeFixture(t)
	var saved []uint64
	var mu sync.Mutex
	st, err := NewStore(c, sign(1), self, func(s Signed) error {
		m, _ := OpenMembership(s, c)
		mu.Lock()
		saved = append(saved, m.Version)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ch, cancel := st.Subscribe()
	defer cancel()
	<-ch // the initial value
	k2, _ := key.NewPrivate()
	n2, _ := NewNode(c.Networks, 2, "home-a", k2.Public())
	if ok, err := st.Adopt(sign(2, n2)); !ok || err != nil {
		t.Fatalf("adopt v2: %v %v", ok, err)
	}
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("subscriber not told")
	}
	if st.Current().Version != 2 || len(st.Current().Nodes) != 2 {
		t.Fatalf("current %+v", st.Current())
	}
	if ok, err := st.Adopt(sign(2)); ok || err != nil {
		t.Fatalf("same version again: %v %v", ok, err)
	}
	if ok, err := st.Adopt(sign(1)); ok || err != nil {
		t.Fatalf("older version: %v %v", ok, err)
	}
	if len(saved) != 1 || saved[0] != 2 {
		t.Fatalf("saved %v", saved)
	}
}

func TestStoreRefuses(t *testing.T) {
	c, sk, self, sign := storeFixture(t)
	st, err := NewStore(c, sign(1), self, func(Signed) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	// Signed by another cluster's key.
	_, other := testCluster(t, "demo")
	forged, _ := SignMembership(other.PrivateKey, Membership{Cluster: c.Name, Version: 9, Nodes: []Node{self}})
	if ok, err := st.Adopt(forged); ok || err == nil {
		t.Errorf("forged membership: %v %v", ok, err)
	}
	// A valid membership without this node.
	k, _ := key.NewPrivate()
	stranger, _ := NewNode(c.Networks, 1, "anchor", k.Public())
	without, _ := SignMembership(sk.PrivateKey, Membership{Cluster: c.Name, Version: 3, Nodes: []Node{stranger}})
	if ok, err := st.Adopt(without); ok || !errors.Is(err, ErrNotListed) {
		t.Errorf("membership without us: %v %v", ok, err)
	}
	if st.Current().Version != 1 {
		t.Errorf("version moved to %d", st.Current().Version)
	}
}

func TestStorePersistFailureKeepsCurrent(t *testing.T) {
	c, _, self, sign := storeFixture(t)
	st, _ := NewStore(c, sign(1), self, func(Signed) error { return errors.New("disk full") })
	if ok, err := st.Adopt(sign(2)); ok || err == nil {
		t.Fatalf("adopt with a failing disk: %v %v", ok, err)
	}
	if st.Current().Version != 1 {
		t.Fatal("a membership that was not saved became current")
	}
}

// TestStoreReadersDoNotWaitOnDisk: Current answers while Adopt is blocked
// in its write.
func TestStoreReadersDoNotWaitOnDisk(t *testing.T) {
	c, _, self, sign := storeFixture(t)
	release := make(chan struct{})
	inWrite := make(chan struct{})
	st, _ := NewStore(c, sign(1), self, func(Signed) error { close(inWrite); <-release; return nil })
	go st.Adopt(sign(2))
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

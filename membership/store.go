package membership

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrSave wraps Adopt's failure to persist a membership: the membership
// was good, this node could not keep it.
var ErrSave = errors.New("save membership")

// ErrNotListed is Adopt's error for a membership that does not list this
// node with its key.
var ErrNotListed = errors.New("membership does not list this node")

// Store holds the node's current membership. Readers take a snapshot
// (Current) and never wait on a writer; subscribers are told of each new
// version. Adopt verifies and persists a newer membership: writers are
// serialised among themselves only.
type Store struct {
	cluster Cluster
	self    Node
	persist func(Signed) error

	writeMu sync.Mutex // held by Adopt across the write to disk
	cur     atomic.Pointer[snapshot]

	subMu sync.Mutex
	subs  map[chan struct{}]struct{}
}

type snapshot struct {
	m Membership
	s Signed
}

// NewStore opens the stored signed membership s of cluster c for the node
// self; persist writes a newer one before it becomes current.
func NewStore(c Cluster, s Signed, self Node, persist func(Signed) error) (*Store, error) {
	m, err := OpenMembership(s, c)
	if err != nil {
		return nil, err
	}
	st := &Store{cluster: c, self: self, persist: persist, subs: map[chan struct{}]struct{}{}}
	st.cur.Store(&snapshot{m, s})
	return st, nil
}

// Current is the membership now.
func (st *Store) Current() Membership { return st.cur.Load().m }

// Signed is the current membership as signed, to pass on.
func (st *Store) Signed() Signed { return st.cur.Load().s }

// Cluster is the cluster the store belongs to.
func (st *Store) Cluster() Cluster { return st.cluster }

// Subscribe returns a channel that receives a value after each change (one
// value stands for any number of changes: read Current), and one at once,
// so that a new subscriber starts from the current membership; and the
// function that ends the subscription.
func (st *Store) Subscribe() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	c <- struct{}{}
	st.subMu.Lock()
	st.subs[c] = struct{}{}
	st.subMu.Unlock()
	return c, func() {
		st.subMu.Lock()
		delete(st.subs, c)
		st.subMu.Unlock()
	}
}

// Adopt takes s if it verifies, is newer than the current membership and
// lists this node with its key: it is persisted, becomes current, and
// subscribers are told. It reports whether s was taken; an older or equal
// version is not an error.
func (st *Store) Adopt(s Signed) (bool, error) {
	m, err := OpenMembership(s, st.cluster)
	if err != nil {
		return false, err
	}
	if self, ok := m.Find(st.self.Name); !ok || self.PublicKey != st.self.PublicKey {
		return false, ErrNotListed
	}
	st.writeMu.Lock()
	if m.Version <= st.Current().Version {
		st.writeMu.Unlock()
		return false, nil
	}
	if err := st.persist(s); err != nil {
		st.writeMu.Unlock()
		return false, fmt.Errorf("%w: %w", ErrSave, err)
	}
	st.cur.Store(&snapshot{m, s})
	st.writeMu.Unlock()
	st.notify()
	return true, nil
}

func (st *Store) notify() {
	st.subMu.Lock()
	defer st.subMu.Unlock()
	for c := range st.subs {
		select {
		case c <- struct{}{}:
		default: // a change is already pending
		}
	}
}

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

// ErrNotListed is the error for a membership that does not list this node
// with its key (and does not say it was removed).
var ErrNotListed = errors.New("membership does not list this node")

// Store holds the node's current membership. Readers take a snapshot
// (Current) and never wait on a writer; subscribers are told of each
// change. Adopt merges a set into the one held and persists the union:
// writers are serialised among themselves only.
type Store struct {
	cluster Cluster
	self    Node
	persist func(Set) error

	writeMu sync.Mutex // held by Adopt across the write to disk
	cur     atomic.Pointer[snapshot]

	subMu sync.Mutex
	subs  map[chan struct{}]struct{}
}

type snapshot struct {
	m      Membership
	s      Set
	digest string
}

// NewStore opens the stored set s of cluster c for the node self; persist
// writes a changed set before it becomes current. A set that says self was
// removed is a *RemovedError.
func NewStore(c Cluster, s Set, self Node, persist func(Set) error) (*Store, error) {
	s = Merge(s)
	m, err := Open(s, c)
	if err != nil {
		return nil, err
	}
	if err := checkSelf(m, self); err != nil {
		return nil, err
	}
	st := &Store{cluster: c, self: self, persist: persist, subs: map[chan struct{}]struct{}{}}
	st.cur.Store(&snapshot{m, s, s.Digest()})
	return st, nil
}

func checkSelf(m Membership, self Node) error {
	if t, gone := m.RemovedKey(self.PublicKey); gone {
		return &RemovedError{t}
	}
	if n, ok := m.Find(self.Name); !ok || n.PublicKey != self.PublicKey {
		return ErrNotListed
	}
	return nil
}

// Current is the membership now.
func (st *Store) Current() Membership { return st.cur.Load().m }

// Set is the current set, to pass on.
func (st *Store) Set() Set { return st.cur.Load().s }

// Digest names the current set (Set.Digest).
func (st *Store) Digest() string { return st.cur.Load().digest }

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

// Adopt merges s into the current set if every entry of s verifies. The
// union is persisted, becomes current, and subscribers are told; Adopt
// reports whether anything changed. A union that removes this node is
// kept too (a restart must know it) and returned as a *RemovedError; one
// that no longer lists it (it lost a conflict) is refused, ErrNotListed.
func (st *Store) Adopt(s Set) (bool, error) {
	if _, err := Open(s, st.cluster); err != nil {
		return false, err
	}
	st.writeMu.Lock()
	cur := st.cur.Load()
	merged := Merge(cur.s, s)
	if len(merged.Entries) == len(cur.s.Entries) {
		st.writeMu.Unlock()
		return false, nil
	}
	m, err := Open(merged, st.cluster)
	if err == nil {
		err = checkSelf(m, st.self)
	}
	var removed *RemovedError
	if err != nil && !errors.As(err, &removed) {
		st.writeMu.Unlock()
		return false, err
	}
	if perr := st.persist(merged); perr != nil {
		st.writeMu.Unlock()
		return false, fmt.Errorf("%w: %w", ErrSave, perr)
	}
	st.cur.Store(&snapshot{m, merged, merged.Digest()})
	st.writeMu.Unlock()
	st.notify()
	return true, err
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

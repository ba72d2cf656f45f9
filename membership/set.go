package membership

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/hepto-net/hepto/key"
)

// Set is the membership as nodes keep and exchange it: signed entries (node
// records and removals), each of which verifies on its own. Two sets merge
// by union, so that memberships written by different anchors converge on
// every node, in any order, through any node, without the cluster key: see
// Open for the rule that turns a set into a Membership.
type Set struct {
	Entries []Signed `json:"entries"`
}

// UnmarshalJSON also reads the single signed membership that membership.json
// held before sets, as a set of that one entry.
func (s *Set) UnmarshalJSON(b []byte) error {
	var v struct {
		Entries *[]Signed `json:"entries"`
		Signed
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch {
	case v.Entries != nil:
		s.Entries = *v.Entries
	case v.Kind != "":
		s.Entries = []Signed{v.Signed}
	default:
		return fmt.Errorf("membership set: no entries")
	}
	return nil
}

// NewSet is the set of these entries, normalised.
func NewSet(entries ...Signed) Set { return Merge(Set{Entries: entries}) }

// Merge is the union of sets: entries sorted by digest, each once.
func Merge(sets ...Set) Set {
	var all []Signed
	for _, s := range sets {
		all = append(all, s.Entries...)
	}
	slices.SortFunc(all, func(a, b Signed) int { return bytes.Compare(a.digest(), b.digest()) })
	all = slices.CompactFunc(all, func(a, b Signed) bool { return bytes.Equal(a.digest(), b.digest()) })
	return Set{Entries: all}
}

// Digest names the set's content: equal sets, equal digests.
func (s Set) Digest() string {
	h := sha256.New()
	for _, e := range Merge(s).Entries {
		h.Write(e.digest())
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// Contains reports whether every entry of o is in s.
func (s Set) Contains(o Set) bool { return len(Merge(s, o).Entries) == len(Merge(s).Entries) }

func (e Signed) digest() []byte {
	h := sha256.New()
	h.Write(signedBytes(e.Kind, e.Payload))
	h.Write(e.Sig)
	return h.Sum(nil)
}

// Open verifies every entry of s and computes the membership it stands for:
//   - a node whose public key has a tombstone is not a member, ever again;
//   - of the records of one key, the highest revision counts (an anchor
//     re-signs a record to change it), ties broken by the payload's bytes;
//   - two records that claim one name or one index (two anchors admitting
//     at once): the one that joined first keeps it, then the lower key; the
//     other is not a member (its node learns so with ErrNotListed).
//
// Entries of kinds this version does not know are kept, not counted: a
// newer node may add kinds. An entry that does not verify fails the set.
func Open(s Set, c Cluster) (Membership, error) {
	var nodes []Node
	dead := map[string]Tombstone{}
	var removed []Tombstone
	for _, e := range s.Entries {
		switch e.Kind {
		case KindNode:
			n, err := OpenNode(e, c)
			if err != nil {
				return Membership{}, fmt.Errorf("membership: %w", err)
			}
			nodes = append(nodes, n)
		case KindTombstone:
			var t Tombstone
			if err := e.Open(c.PublicKey, KindTombstone, &t); err != nil {
				return Membership{}, fmt.Errorf("membership: %w", err)
			}
			if t.PublicKey.IsZero() {
				return Membership{}, fmt.Errorf("membership: removal of %s names no key", t.Name)
			}
			removed = append(removed, t)
		case KindMembership:
			m, err := OpenMembership(e, c)
			if err != nil {
				return Membership{}, err
			}
			nodes = append(nodes, m.Nodes...)
		}
	}
	slices.SortFunc(removed, func(a, b Tombstone) int { return a.Removed.Compare(b.Removed) })
	for _, t := range removed {
		if _, seen := dead[t.PublicKey.String()]; !seen {
			dead[t.PublicKey.String()] = t
		}
	}
	// Latest revision of each live key.
	latest := map[string]Node{}
	for _, n := range nodes {
		k := n.PublicKey.String()
		if _, gone := dead[k]; gone {
			continue
		}
		if cur, ok := latest[k]; !ok || newerRecord(n, cur) {
			latest[k] = n
		}
	}
	cands := make([]Node, 0, len(latest))
	for _, n := range latest {
		cands = append(cands, n)
	}
	slices.SortFunc(cands, func(a, b Node) int {
		return cmp.Or(a.Joined.Compare(b.Joined), bytes.Compare(a.PublicKey[:], b.PublicKey[:]))
	})
	m := Membership{Cluster: c.Name, Version: uint64(len(s.Entries))}
	names, idx := map[string]bool{}, map[int]bool{}
	for _, n := range cands {
		if names[n.Name] || idx[n.Index] {
			continue
		}
		names[n.Name], idx[n.Index] = true, true
		m.Nodes = append(m.Nodes, n)
	}
	slices.SortFunc(m.Nodes, func(a, b Node) int { return cmp.Compare(a.Index, b.Index) })
	for _, t := range dead {
		m.Removed = append(m.Removed, t)
	}
	slices.SortFunc(m.Removed, func(a, b Tombstone) int { return cmp.Compare(a.Index, b.Index) })
	return m, nil
}

// newerRecord: a is a later revision of b's key than b.
func newerRecord(a, b Node) bool {
	if a.Revision != b.Revision {
		return a.Revision > b.Revision
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Compare(ja, jb) > 0
}

// KindTombstone is a signed removal.
const KindTombstone = "tombstone"

// Quarantine is how long a removed node's index, and so its addresses, stay
// unused: connections and caches elsewhere may still name them.
const Quarantine = 24 * time.Hour

// Tombstone records that a node left the cluster. It is kept for good: the
// key it names is never a member again, whatever record comes later.
type Tombstone struct {
	Name      string     `json:"name"`
	Index     int        `json:"index"`
	PublicKey key.Public `json:"public_key"`
	Removed   time.Time  `json:"removed"`
	By        string     `json:"by"` // the anchor that signed it
}

// SignTombstone signs the removal of n.
func SignTombstone(priv ed25519.PrivateKey, n Node, by string, now time.Time) (Signed, error) {
	return Sign(priv, KindTombstone, Tombstone{Name: n.Name, Index: n.Index, PublicKey: n.PublicKey, Removed: now.UTC().Truncate(time.Second), By: by})
}

// RemovedError says that a node was removed from the cluster.
type RemovedError struct{ Tombstone Tombstone }

func (e *RemovedError) Error() string {
	return fmt.Sprintf("node %s was removed from the cluster at %s by %s: it can no longer take part; remove its state directory and join again with a new token to come back",
		e.Tombstone.Name, e.Tombstone.Removed.UTC().Format(time.RFC3339), e.Tombstone.By)
}

// RemovedKey returns the tombstone of a key, if it was removed.
func (m Membership) RemovedKey(k key.Public) (Tombstone, bool) {
	for _, t := range m.Removed {
		if t.PublicKey == k {
			return t, true
		}
	}
	return Tombstone{}, false
}

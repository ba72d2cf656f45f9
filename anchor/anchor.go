// Package anchor holds an anchor's duties: it issues join tokens, admits
// new nodes, signs the membership and pushes it to every node, passes ICE
// signalling between homes, and serves STUN and TURN with credentials for
// members. It runs only on anchors (nodes that hold the cluster key).
package anchor

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/state"
	"github.com/hepto-net/hepto/tunnel"
)

// DefaultTokenTTL is how long a join token lasts unless told otherwise;
// MaxTokenTTL, the longest it may: a token is a way into the cluster.
const (
	DefaultTokenTTL = 24 * time.Hour
	MaxTokenTTL     = 7 * 24 * time.Hour
)

// Options configure an Anchor.
type Options struct {
	State  state.Dir
	Store  *membership.Store
	Self   membership.Node
	Signer ed25519.PrivateKey // the cluster's signing key
	Client *control.Client    // calls into the overlay
	// JoinPeersChanged is called when the set of join peers changes (a
	// token issued or expired), for the tunnel to follow.
	JoinPeersChanged func()
	// Restored: the state was restored from a backup (STATE/restored).
	// The anchor admits nodes only once it has compared its membership
	// with another node's: nodes admitted after the backup must be known
	// first, or their indexes could be given out again.
	Restored bool
	// BeforeRemove is called before a node is removed: a control-plane
	// node's etcd member goes first, and its error (etcd's quorum would
	// be lost) stops the removal. nil: nothing to do.
	BeforeRemove func(ctx context.Context, n membership.Node) error
	// RelayMin and RelayMax are TURN's relay ports (UDP, inclusive; 0:
	// nat's default, 49152-65535). The ports left out are free for
	// published Services.
	RelayMin, RelayMax uint16
	Logger             *slog.Logger
}

// Anchor is an anchor's state. mu serialises the writers of its token
// book (each writes anchor.json, an admission a membership too); readers
// use the snapshot in issued, and the membership store, and never wait on
// a write.
type Anchor struct {
	o    Options
	log  *slog.Logger
	kick chan struct{} // a new membership to push
	// tokensChanged: the token book changed, to send to the other anchors.
	tokensChanged chan struct{}
	// peersChanged: a join peer's end moved (a token issued or used).
	peersChanged chan struct{}

	mu     sync.Mutex
	tokens *tokenBook
	issued atomic.Pointer[[]issuedToken]
	gone   atomic.Pointer[membership.Node] // removed, not yet told

	restored atomic.Bool // see Options.Restored
}

// New loads the token book.
func New(o Options) (*Anchor, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.JoinPeersChanged == nil {
		o.JoinPeersChanged = func() {}
	}
	tb, err := loadTokens(o.State)
	if err != nil {
		return nil, err
	}
	a := &Anchor{o: o, log: o.Logger, tokens: tb, kick: make(chan struct{}, 1), tokensChanged: make(chan struct{}, 1), peersChanged: make(chan struct{}, 1)}
	a.snapshot()
	if o.Restored {
		a.restored.Store(true)
		a.Kick() // push the set: the answers bring what was admitted since
	}
	return a, nil
}

// ErrRestored is the refusal of a restored anchor that has not yet heard
// from the cluster.
var ErrRestored = errors.New("this anchor was restored from a backup and has not yet compared its membership with another node's; it admits nodes once it has (it is asking them now)")

// HeardFromCluster tells a restored anchor that its membership met
// another node's: it may admit nodes again.
func (a *Anchor) HeardFromCluster() {
	if a.restored.CompareAndSwap(true, false) {
		os.Remove(a.o.State.Path(state.RestoredFile))
		a.log.Info("restored anchor: membership compared with the cluster's; admitting nodes again")
	}
}

// snapshot publishes the token book to readers; callers hold mu.
func (a *Anchor) snapshot() {
	ts := slices.Clone(a.tokens.Tokens)
	a.issued.Store(&ts)
}

func (a *Anchor) cluster() membership.Cluster { return a.o.Store.Cluster() }

// TokenOptions say what a token admits.
type TokenOptions struct {
	Name string
	TTL  time.Duration // 0: DefaultTokenTTL
	// Anchor admits the node as a further anchor, reachable at Endpoint
	// (HOST:PORT, UDP).
	Anchor   bool
	Endpoint string
	// ControlPlane admits a control-plane node.
	ControlPlane bool
	// Fabric admits a node to the fabric only: it never runs Kubernetes
	// and gets no Kubernetes credentials.
	Fabric bool
}

// IssueToken signs a token for a new node and opens its join peer.
func (a *Anchor) IssueToken(o TokenOptions) (string, time.Time, error) {
	name, ttl := o.Name, o.TTL
	if err := membership.CheckName("node", name); err != nil {
		return "", time.Time{}, err
	}
	if a.restored.Load() {
		return "", time.Time{}, ErrRestored
	}
	if o.Fabric && o.ControlPlane {
		return "", time.Time{}, errors.New("a node of the fabric only (--fabric) cannot run the control plane (--control-plane)")
	}
	if o.Anchor != (o.Endpoint != "") {
		return "", time.Time{}, errors.New("an anchor's token needs --endpoint HOST:PORT (its public UDP endpoint), and only an anchor's")
	}
	if o.Anchor {
		if _, _, err := net.SplitHostPort(o.Endpoint); err != nil {
			return "", time.Time{}, fmt.Errorf("invalid endpoint %q: want HOST:PORT", o.Endpoint)
		}
	}
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	if ttl > MaxTokenTTL {
		return "", time.Time{}, fmt.Errorf("a token lasts at most %s (asked: %s)", MaxTokenTTL, ttl)
	}
	id, jid, err := membership.NewTokenID()
	if err != nil {
		return "", time.Time{}, err
	}
	joinKey, err := key.NewPrivate()
	if err != nil {
		return "", time.Time{}, err
	}
	c, m := a.cluster(), a.o.Store.Current()
	if _, taken := m.Find(name); taken {
		return "", time.Time{}, fmt.Errorf("node %q is already a member of the cluster", name)
	}
	self := a.self()
	r := self.IndexRange(c.Networks)
	if _, err := m.FreeIndex(r.First, r.Last, time.Now()); err != nil {
		return "", time.Time{}, fmt.Errorf("this anchor cannot admit another node: %w", err)
	}
	if _, _, ok := r.Split(); o.Anchor && !ok {
		return "", time.Time{}, fmt.Errorf("this anchor's index range %d..%d is too small to share with another anchor", r.First, r.Last)
	}
	now := time.Now().UTC()
	tok := membership.Token{
		ID: id, Cluster: c.Name, ClusterKey: c.PublicKey, Name: name,
		Expires: now.Add(ttl).Truncate(time.Second), JoinKey: joinKey, JoinIP: c.Networks.JoinAddr(jid),
	}
	if o.Anchor {
		tok.Roles, tok.Endpoint = []string{membership.RoleAnchor}, o.Endpoint
	}
	if o.ControlPlane {
		tok.Roles = append(tok.Roles, membership.RoleControlPlane)
	}
	if o.Fabric {
		tok.Roles = append(tok.Roles, membership.RoleFabric)
	}
	// This anchor first: the new node tries the anchors in this order.
	anchors := slices.DeleteFunc(slices.Clone(m.Nodes), func(n membership.Node) bool { return !n.IsAnchor() || n.Name == self.Name })
	for _, n := range append([]membership.Node{self}, anchors...) {
		tok.Anchors = append(tok.Anchors, membership.Anchor{Name: n.Name, Endpoint: n.Endpoint, PublicKey: n.PublicKey, OverlayIPs: n.OverlayIPs})
	}
	s, err := tok.Encode(a.o.Signer)
	if err != nil {
		return "", time.Time{}, err
	}
	a.mu.Lock()
	a.tokens.Tokens = append(a.tokens.Tokens, issuedToken{ID: id, Name: name, Expires: tok.Expires, JoinPublic: joinKey.Public(), JoinIP: tok.JoinIP})
	err = a.tokens.save(now)
	a.snapshot()
	a.mu.Unlock()
	if err != nil {
		return "", time.Time{}, err
	}
	a.o.JoinPeersChanged()
	a.tokensChangedNow()
	a.log.Info("join token issued", "name", name, "expires", tok.Expires, "roles", tok.Roles)
	return s, tok.Expires, nil
}

// JoinPeers are the WireGuard peers of the tokens not yet expired.
func (a *Anchor) JoinPeers(now time.Time) []tunnel.Peer { return joinPeers(*a.issued.Load(), now) }

// Admit handles a join request that arrived from remote inside the
// tunnel. Its errors are *control.Error: refusals, or Unavailable when
// this anchor failed (a disk write) and the node may retry.
func (a *Anchor) Admit(req control.JoinRequest, remote netip.Addr) (control.JoinResponse, error) {
	c := a.cluster()
	tok, err := membership.ParseToken(req.Token)
	if err != nil {
		return control.JoinResponse{}, control.Refused("%v", err)
	}
	now := time.Now().UTC()
	if err := tok.Check(c, now); err != nil {
		return control.JoinResponse{}, control.Refused("%v", err)
	}
	if a.restored.Load() {
		return control.JoinResponse{}, control.Unavailable(ErrRestored)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	it := a.tokens.find(tok.ID)
	switch {
	case it == nil:
		return control.JoinResponse{}, control.Refused("token unknown to this anchor")
	case it.JoinIP != remote:
		return control.JoinResponse{}, control.Refused("join request did not come through the token's own tunnel")
	case it.UsedAt != nil && it.UsedBy != req.PublicKey:
		return control.JoinResponse{}, control.Refused("token already used, at %s", it.UsedAt.Format(time.RFC3339))
	}
	m := a.o.Store.Current()
	node, exists := m.Find(tok.Name)
	switch {
	case exists && node.PublicKey != req.PublicKey:
		return control.JoinResponse{}, control.Refused("node %q is already a member of the cluster", tok.Name)
	case exists:
		// A retry after a lost answer: give the same record again.
	default:
		for _, n := range m.Nodes {
			if n.PublicKey == req.PublicKey {
				return control.JoinResponse{}, control.Refused("that WireGuard key already belongs to node %q", n.Name)
			}
		}
		if _, gone := m.RemovedKey(req.PublicKey); gone {
			return control.JoinResponse{}, control.Refused("that WireGuard key belongs to a node removed from the cluster")
		}
		self := a.self()
		r := self.IndexRange(c.Networks)
		idx, err := m.FreeIndex(r.First, r.Last, now)
		if err != nil {
			return control.JoinResponse{}, control.Refused("%v", err)
		}
		if node, err = membership.NewNode(c.Networks, idx, tok.Name, req.PublicKey); err != nil {
			return control.JoinResponse{}, control.Refused("%v", err)
		}
		node.Roles, node.Endpoint = tok.Roles, tok.Endpoint
		node.Home = req.Home
		node.Zone, node.ZoneFixed = membership.ChooseZone(m.Nodes, node, req.Home, req.Zone)
		entries := []any{node}
		if node.IsAnchor() {
			// The new anchor admits nodes from the upper half of this
			// anchor's range; this anchor keeps the lower half (its record's
			// next revision), so that they never give out one index twice.
			keep, give, ok := r.Split()
			if !ok {
				return control.JoinResponse{}, control.Refused("this anchor's index range %d..%d is too small to share with another anchor", r.First, r.Last)
			}
			node.Indexes = &give
			if self.IsControlPlane() && !slices.Contains(self.Roles, membership.RoleControlPlane) {
				self.Roles = append(slices.Clone(self.Roles), membership.RoleControlPlane)
			}
			self.Indexes, self.Revision = &keep, self.Revision+1
			entries = []any{self, node}
		}
		if err := a.publish(entries...); err != nil {
			return control.JoinResponse{}, control.Unavailable(err)
		}
	}
	if it.UsedAt == nil {
		it.UsedAt, it.UsedBy = &now, req.PublicKey
		err := a.tokens.save(now)
		if err != nil {
			it.UsedAt, it.UsedBy = nil, key.Public{}
		}
		a.snapshot()
		if err != nil {
			return control.JoinResponse{}, control.Unavailable(err)
		}
		a.tokensChangedNow()
	}
	var resp control.JoinResponse
	if resp.Node, err = membership.Sign(a.o.Signer, membership.KindNode, node); err != nil {
		return control.JoinResponse{}, control.Unavailable(err)
	}
	if resp.Cluster, err = membership.Sign(a.o.Signer, membership.KindCluster, c); err != nil {
		return control.JoinResponse{}, control.Unavailable(err)
	}
	resp.Membership = a.o.Store.Set()
	if node.IsAnchor() {
		resp.SigningKey = &membership.SigningKey{PrivateKey: a.o.Signer}
	}
	a.log.Info("node admitted", "name", node.Name, "overlay", node.OverlayIPs, "roles", node.Roles, "zone", node.Zone)
	return resp, nil
}

// self is this anchor's record as the membership has it now (its latest
// revision).
func (a *Anchor) self() membership.Node {
	if n, ok := a.o.Store.Current().Find(a.o.Self.Name); ok && n.PublicKey == a.o.Self.PublicKey {
		return n
	}
	return a.o.Self
}

// publish signs entries (records, removals) and adopts them at once; the
// store saves the union.
func (a *Anchor) publish(vs ...any) error {
	var es []membership.Signed
	for _, v := range vs {
		kind := membership.KindNode
		if _, ok := v.(membership.Tombstone); ok {
			kind = membership.KindTombstone
		}
		s, err := membership.Sign(a.o.Signer, kind, v)
		if err != nil {
			return err
		}
		es = append(es, s)
	}
	ok, err := a.o.Store.Adopt(membership.NewSet(es...))
	if err == nil && !ok {
		err = errors.New("the entries were already in the membership")
	}
	return err
}

// ErrSelf is Remove's refusal to remove the anchor it runs on.
var ErrSelf = errors.New("an anchor cannot remove itself: run hepto remove on another anchor")

// Remove takes a node out of the cluster: a signed tombstone joins the
// membership and is pushed at once; every node drops the node's peer, its
// key is refused from then on, its index stays unused for a day.
func (a *Anchor) Remove(ctx context.Context, name string) (membership.Tombstone, error) {
	m := a.o.Store.Current()
	if name == a.o.Self.Name {
		return membership.Tombstone{}, ErrSelf
	}
	n, ok := m.Find(name)
	if !ok {
		return membership.Tombstone{}, fmt.Errorf("%w: %q", ErrNoNode, name)
	}
	if a.o.BeforeRemove != nil {
		if err := a.o.BeforeRemove(ctx, n); err != nil {
			return membership.Tombstone{}, fmt.Errorf("%w: %w", ErrRemoveRefused, err)
		}
	}
	t := membership.Tombstone{Name: n.Name, Index: n.Index, PublicKey: n.PublicKey, Removed: time.Now().UTC().Truncate(time.Second), By: a.o.Self.Name}
	a.mu.Lock()
	err := a.publish(t)
	a.mu.Unlock()
	if err != nil {
		return membership.Tombstone{}, err
	}
	a.log.Info("node removed", "name", n.Name, "index", n.Index)
	a.gone.Store(&n) // it gets the news too, if it still listens
	a.Kick()
	return t, nil
}

// ErrRemoveRefused is Remove's error when the node's removal would harm
// the cluster (its etcd member's removal was refused).
var ErrRemoveRefused = errors.New("removal refused")

// ErrNoNode is Remove's error for a name the membership does not hold.
var ErrNoNode = errors.New("no such node in the cluster")

// Kick asks for the membership to be pushed to every node.
func (a *Anchor) Kick() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// push sends the current set to every other node, retrying a little: a
// node that misses it pulls it when it starts and periodically. A node
// that holds more (another anchor's admissions) answers with its union,
// which this anchor merges. The node removed last gets it too: it learns
// that it must stop.
func (a *Anchor) push(ctx context.Context) {
	s, m := a.o.Store.Set(), a.o.Store.Current()
	targets := slices.Clone(m.Nodes)
	if g := a.gone.Swap(nil); g != nil {
		targets = append(targets, *g)
	}
	var wg sync.WaitGroup
	for _, n := range targets {
		if n.Name == a.o.Self.Name {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := 0; attempt < 3; attempt++ {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				var theirs membership.Set
				err := a.o.Client.Post(cctx, n.OverlayIPs[0], control.PathMembership, s, &theirs)
				cancel()
				if err == nil && len(theirs.Entries) > 0 {
					if _, err := a.o.Store.Adopt(theirs); err != nil {
						a.log.Warn("membership from a node refused", "node", n.Name, "err", err)
					}
				}
				if err == nil {
					a.HeardFromCluster()
				}
				if err == nil || control.IsPermanent(err) {
					return
				}
				a.log.Debug("membership push", "node", n.Name, "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(2 * time.Second):
				}
			}
		}()
	}
	wg.Wait()
}

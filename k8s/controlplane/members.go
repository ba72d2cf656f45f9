package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	etcderrors "go.etcd.io/etcd/server/v3/etcdserver/errors"
)

// etcd's membership changes go through the embedded server itself (no
// client, no credentials): they are raft proposals like any write, checked
// by etcd's own quorum rules (strict reconfiguration check).

// Member is an etcd member, as status shows it.
type Member struct {
	Name    string `json:"name"` // "" until a new member first started
	ID      string `json:"id"`
	PeerURL string `json:"peer_url"`
	Learner bool   `json:"learner,omitempty"`
}

// Members is etcd's membership seen from this node.
type Members struct {
	Members []Member `json:"members"`
	Leader  string   `json:"leader"` // the leader's name; "" while there is none
}

// ErrQuorum is RemoveMember's refusal when the removal would lose etcd's
// quorum.
var ErrQuorum = errors.New("etcd would lose its quorum")

// promoteEvery is how often the leader tries to promote a learner: etcd
// refuses until the learner has caught up.
const promoteEvery = 5 * time.Second

// memberChangeTimeout bounds a membership change: a proposal without a
// quorum never commits.
const memberChangeTimeout = 15 * time.Second

// runningEtcd is the embedded etcd once it serves.
func (c *ControlPlane) runningEtcd() (*embed.Etcd, error) {
	e := c.etcd.Load()
	if e == nil {
		return nil, ErrEtcdNotRunning
	}
	return e, nil
}

// EtcdMembers is etcd's membership and leader, from this node's etcd.
func (c *ControlPlane) EtcdMembers() (Members, error) {
	e, err := c.runningEtcd()
	if err != nil {
		return Members{}, err
	}
	leader := e.Server.Leader()
	var out Members
	for _, m := range e.Server.Cluster().Members() {
		out.Members = append(out.Members, Member{Name: m.Name, ID: m.ID.String(), PeerURL: strings.Join(m.PeerURLs, ","), Learner: m.IsLearner})
		if m.ID == leader {
			out.Leader = m.Name
		}
	}
	slices.SortFunc(out.Members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// AddMember lets a control-plane node named name into etcd, as a learner
// at peerURL, and gives what it needs to start: the CAs and etcd's
// membership. Asked again (the node restarted before its etcd first ran,
// or lost its data), it replaces the member it had.
func (c *ControlPlane) AddMember(ctx context.Context, name, peerURL string) (Joined, error) {
	e, err := c.runningEtcd()
	if err != nil {
		return Joined{}, err
	}
	urls, err := types.NewURLs([]string{peerURL})
	if err != nil {
		return Joined{}, fmt.Errorf("peer URL: %w", err)
	}
	files, err := c.PKIFiles()
	if err != nil {
		return Joined{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, memberChangeTimeout)
	defer cancel()
	// One change at a time from this node, and never one that etcd would
	// refuse when applying it: a refused change still takes a raft entry,
	// which a member replaying its log after a crash may apply after all
	// (etcd 3.7 then holds two members at one peer URL).
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	var members []*membership.Member
	for _, m := range e.Server.Cluster().Members() {
		if m.IsLearner && !slices.Contains(m.PeerURLs, peerURL) {
			return Joined{}, fmt.Errorf("another control-plane node is joining (etcd holds one learner at a time); try again later")
		}
	}
	for _, m := range e.Server.Cluster().Members() {
		mine := slices.Contains(m.PeerURLs, peerURL) || (name != "" && m.Name == name)
		switch {
		case mine && m.Name == "" && slices.Equal(m.PeerURLs, []string{peerURL}):
			// Added, never started: the same answer again.
			members = e.Server.Cluster().Members()
		case mine:
			// Its data is gone: a new member takes its place; never one
			// that runs.
			if m.ID == e.Server.MemberID() {
				return Joined{}, fmt.Errorf("node %s asks to join with this node's own etcd member", name)
			}
			client, err := c.peerClient()
			if err != nil {
				return Joined{}, err
			}
			if peerAnswers(ctx, client, m.PeerURLs) {
				return Joined{}, fmt.Errorf("node %s's etcd member answers at %s: it runs, and is not replaced", name, strings.Join(m.PeerURLs, ","))
			}
			if _, err := e.Server.RemoveMember(ctx, uint64(m.ID)); err != nil {
				return Joined{}, fmt.Errorf("replacing %s's etcd member: %w", name, quorumError(err))
			}
		}
	}
	if members == nil {
		now := time.Now()
		if members, err = e.Server.AddMember(ctx, *membership.NewMemberAsLearner("", urls, "", &now)); err != nil {
			return Joined{}, fmt.Errorf("adding %s to etcd: %w", name, err)
		}
	}
	var initial []string
	for _, m := range members {
		n := m.Name
		if slices.Contains(m.PeerURLs, peerURL) {
			n = name
		}
		if n == "" {
			continue // another member not started yet: not ours to name
		}
		for _, u := range m.PeerURLs {
			initial = append(initial, n+"="+u)
		}
	}
	c.opts.Logger.Info("control plane: etcd learner added", "node", name, "peer", peerURL)
	return Joined{PKI: files, InitialCluster: strings.Join(initial, ",")}, nil
}

// RemoveMember removes the etcd member of the node named name; a removal
// that would lose quorum is refused with ErrQuorum. A node without a
// member is no error.
func (c *ControlPlane) RemoveMember(ctx context.Context, name string) error {
	e, err := c.runningEtcd()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, memberChangeTimeout)
	defer cancel()
	c.memberMu.Lock()
	defer c.memberMu.Unlock()
	for _, m := range e.Server.Cluster().Members() {
		if m.Name != name {
			continue
		}
		if !m.IsLearner {
			if err := c.quorumAfter(ctx, e, m.ID); err != nil {
				return fmt.Errorf("removing %s's etcd member: %w", name, err)
			}
		}
		if _, err := e.Server.RemoveMember(ctx, uint64(m.ID)); err != nil {
			return fmt.Errorf("removing %s's etcd member: %w", name, quorumError(err))
		}
		c.opts.Logger.Info("control plane: etcd member removed", "node", name)
	}
	return nil
}

// peerCheckTimeout bounds the check that a member answers.
const peerCheckTimeout = 3 * time.Second

// quorumAfter checks that the voting members left once gone is removed
// answer, now, in a number that makes a quorum of them: etcd's own check
// trusts its view of its peers, which lags a member that died without
// closing its connections.
func (c *ControlPlane) quorumAfter(ctx context.Context, e *embed.Etcd, gone types.ID) error {
	client, err := c.peerClient()
	if err != nil {
		return err
	}
	var left []*membership.Member
	for _, m := range e.Server.Cluster().Members() {
		if m.ID != gone && !m.IsLearner {
			left = append(left, m)
		}
	}
	answers := make([]bool, len(left))
	var wg sync.WaitGroup
	for i, m := range left {
		if m.ID == e.Server.MemberID() {
			answers[i] = true
			continue
		}
		wg.Go(func() { answers[i] = peerAnswers(ctx, client, m.PeerURLs) })
	}
	wg.Wait()
	n, need := 0, len(left)/2+1
	for _, ok := range answers {
		if ok {
			n++
		}
	}
	if n < need {
		return fmt.Errorf("%w: %d of the %d members left would answer now; etcd needs %d", ErrQuorum, n, len(left), need)
	}
	return nil
}

// peerClient asks etcd members at their peer URLs, with the member's
// certificate.
func (c *ControlPlane) peerClient() (*http.Client, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(c.layout.Certs, "etcd-server.crt"), filepath.Join(c.layout.Certs, "etcd-server.key"))
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: peerCheckTimeout, Transport: &http.Transport{
		Proxy:             nil,
		TLSClientConfig:   &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: c.pki.Etcd.Pool(), MinVersion: tls.VersionTLS12},
		DisableKeepAlives: true,
	}}, nil
}

// peerAnswers tells whether an etcd member answers at one of its peer
// URLs (GET /version, over the peers' TLS).
func peerAnswers(ctx context.Context, client *http.Client, urls []string) bool {
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(u, "/")+"/version", nil)
		if err != nil {
			continue
		}
		res, err := client.Do(req)
		if err != nil {
			continue
		}
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			return true
		}
	}
	return false
}

// quorumError tells etcd's refusals for quorum's sake apart.
func quorumError(err error) error {
	if errors.Is(err, etcderrors.ErrNotEnoughStartedMembers) || errors.Is(err, etcderrors.ErrUnhealthy) {
		return fmt.Errorf("%w: too few of the other members answer now (%v)", ErrQuorum, err)
	}
	return err
}

// tendMembers, while etcd runs, promotes learners once they caught up
// (the leader alone can tell), and brings this member's peer URL in line
// with the node's overlay address (a control plane of before etcd had
// peers, or restored from a backup, advertised loopback).
func (c *ControlPlane) tendMembers(ctx context.Context, e *embed.Etcd) {
	t := time.NewTicker(promoteEvery)
	defer t.Stop()
	urlSet := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.Server.StopNotify():
			return
		case <-t.C:
		}
		if !urlSet {
			urlSet = c.updatePeerURL(ctx, e) == nil
		}
		if e.Server.Leader() != e.Server.MemberID() {
			continue
		}
		for _, m := range e.Server.Cluster().Members() {
			if !m.IsLearner {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, memberChangeTimeout)
			_, err := e.Server.PromoteMember(pctx, uint64(m.ID))
			cancel()
			switch {
			case err == nil:
				c.opts.Logger.Info("control plane: etcd learner promoted", "node", m.Name)
			case errors.Is(err, etcderrors.ErrLearnerNotReady):
			default:
				c.opts.Logger.Warn("control plane: etcd learner not promoted", "node", m.Name, "err", err)
			}
		}
	}
}

// updatePeerURL advertises this member at the node's peer URL.
func (c *ControlPlane) updatePeerURL(ctx context.Context, e *embed.Etcd) error {
	self := e.Server.Cluster().Member(e.Server.MemberID())
	if self == nil || slices.Equal(self.PeerURLs, []string{c.peerURL()}) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, memberChangeTimeout)
	defer cancel()
	m := *self
	m.PeerURLs = []string{c.peerURL()}
	if _, err := e.Server.UpdateMember(ctx, m); err != nil {
		c.opts.Logger.Warn("control plane: etcd peer URL not updated", "err", err)
		return err
	}
	c.opts.Logger.Info("control plane: etcd peer URL updated", "url", c.peerURL())
	return nil
}

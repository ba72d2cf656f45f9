package anchor

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/state"
	"github.com/hepto-net/hepto/tunnel"
)

// issuedToken is an anchor's memory of a token it signed. Its one-time
// WireGuard key is a peer until the token expires, or for UsedGrace once
// it is used: long enough for the joining node to ask again when an
// answer was lost (it is admitted again), not for anyone to keep a way
// into the overlay with it.
type issuedToken struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Expires    time.Time  `json:"expires"`
	JoinPublic key.Public `json:"join_public_key"`
	JoinIP     netip.Addr `json:"join_ip"`
	UsedAt     *time.Time `json:"used_at,omitempty"`
	UsedBy     key.Public `json:"used_by,omitzero"`
}

// tokenBook is anchor.json. Callers hold Anchor.mu.
type tokenBook struct {
	st     state.Dir
	Tokens []issuedToken `json:"tokens"`
}

func loadTokens(st state.Dir) (*tokenBook, error) {
	b := &tokenBook{st: st}
	if err := st.Read(state.AnchorFile, b); err != nil && !errors.Is(err, state.ErrNotExist) {
		return nil, err
	}
	return b, nil
}

// save writes the book, dropping tokens expired for a day.
func (b *tokenBook) save(now time.Time) error {
	b.Tokens = slices.DeleteFunc(b.Tokens, func(t issuedToken) bool { return now.Sub(t.Expires) > 24*time.Hour })
	return b.st.Write(state.AnchorFile, b, 0o600)
}

func (b *tokenBook) find(id string) *issuedToken {
	for i := range b.Tokens {
		if b.Tokens[i].ID == id {
			return &b.Tokens[i]
		}
	}
	return nil
}

// UsedGrace is how long a used token's join peer stays.
const UsedGrace = time.Minute

// peerUntil is when the token's join peer goes.
func (t issuedToken) peerUntil() time.Time {
	if t.UsedAt != nil && t.UsedAt.Add(UsedGrace).Before(t.Expires) {
		return t.UsedAt.Add(UsedGrace)
	}
	return t.Expires
}

// joinPeers are the join peers of tokens not yet expired nor used.
func joinPeers(ts []issuedToken, now time.Time) []tunnel.Peer {
	var out []tunnel.Peer
	for _, t := range ts {
		if now.Before(t.peerUntil()) {
			out = append(out, tunnel.Peer{PublicKey: t.JoinPublic, AllowedIPs: []netip.Prefix{netip.PrefixFrom(t.JoinIP, 128)}})
		}
	}
	return out
}

// nextExpiry is when the next join peer must go.
func nextExpiry(ts []issuedToken, now time.Time) (time.Time, bool) {
	var next time.Time
	for _, t := range ts {
		if until := t.peerUntil(); now.Before(until) && (next.IsZero() || until.Before(next)) {
			next = until
		}
	}
	return next, !next.IsZero()
}

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
// WireGuard key stays a peer until the token expires, used or not, so that
// a second use is told "already used" rather than met with silence.
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

// joinPeers are the join peers of tokens not yet expired.
func joinPeers(ts []issuedToken, now time.Time) []tunnel.Peer {
	var out []tunnel.Peer
	for _, t := range ts {
		if now.Before(t.Expires) {
			out = append(out, tunnel.Peer{PublicKey: t.JoinPublic, AllowedIPs: []netip.Prefix{netip.PrefixFrom(t.JoinIP, 128)}})
		}
	}
	return out
}

// nextExpiry is when the next join peer must go.
func nextExpiry(ts []issuedToken, now time.Time) (time.Time, bool) {
	var next time.Time
	for _, t := range ts {
		if now.Before(t.Expires) && (next.IsZero() || t.Expires.Before(next)) {
			next = t.Expires
		}
	}
	return next, !next.IsZero()
}

package anchor

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/membership"
)

// Anchors share their token books, so that a token works at any anchor,
// once: each anchor sends its book to the others when it changes (a token
// issued, a token used) and when it starts, and merges what they answer
// with (their own books). Merging is a union by token ID in which the
// earliest use wins. Two anchors that see one token used at the same
// moment, before their books meet, both admit a node of that name; the
// membership keeps the first to join (membership.Open), and the other
// node is not listed.

// mergeTokens adds theirs to ours; it reports whether ours changed.
func mergeTokens(ours *[]issuedToken, theirs []issuedToken) bool {
	changed := false
	for _, t := range theirs {
		i := slices.IndexFunc(*ours, func(o issuedToken) bool { return o.ID == t.ID })
		switch {
		case i < 0:
			*ours = append(*ours, t)
			changed = true
		case t.UsedAt != nil && ((*ours)[i].UsedAt == nil || t.UsedAt.Before(*(*ours)[i].UsedAt)):
			(*ours)[i].UsedAt, (*ours)[i].UsedBy = t.UsedAt, t.UsedBy
			changed = true
		}
	}
	return changed
}

// takeTokens merges a book from another anchor into this one's.
func (a *Anchor) takeTokens(theirs []issuedToken) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !mergeTokens(&a.tokens.Tokens, theirs) {
		return nil
	}
	err := a.tokens.save(time.Now())
	a.snapshot()
	go a.o.JoinPeersChanged()
	select {
	case a.peersChanged <- struct{}{}:
	default:
	}
	return err
}

// handleTokens merges another anchor's book and answers with the union.
func (a *Anchor) handleTokens(w http.ResponseWriter, r *http.Request) {
	if !a.fromAnchor(r) {
		control.WriteError(w, control.Refused("token books are for anchors only"))
		return
	}
	var theirs []issuedToken
	if err := control.Decode(r.Body, &theirs); err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	if err := a.takeTokens(theirs); err != nil {
		control.WriteError(w, control.Unavailable(err))
		return
	}
	control.WriteJSON(w, http.StatusOK, *a.issued.Load())
}

// fromAnchor reports whether a request was signed by another anchor.
func (a *Anchor) fromAnchor(r *http.Request) bool {
	n, ok := control.Caller(r)
	return ok && n.IsAnchor() && n.Name != a.o.Self.Name
}

// otherAnchors are the anchors of the membership but this one.
func (a *Anchor) otherAnchors() []membership.Node {
	var out []membership.Node
	for _, n := range a.o.Store.Current().Nodes {
		if n.IsAnchor() && n.Name != a.o.Self.Name {
			out = append(out, n)
		}
	}
	return out
}

// syncTokens sends the book to every other anchor at start and after each
// change, and again every 30 s to those that did not answer.
func (a *Anchor) syncTokens(ctx context.Context) error {
	changes, cancel := a.o.Store.Subscribe() // a new anchor to tell
	defer cancel()
	pending := true
	for {
		if pending {
			pending = !a.sendTokens(ctx)
		}
		retry := time.After(30 * time.Second)
		if !pending {
			retry = nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.tokensChanged:
			pending = true
		case <-changes:
			pending = pending || len(a.otherAnchors()) > 0
		case <-retry:
		}
	}
}

// sendTokens reports whether every other anchor took the book.
func (a *Anchor) sendTokens(ctx context.Context) bool {
	book := *a.issued.Load()
	var wg sync.WaitGroup
	var mu sync.Mutex
	all := true
	for _, n := range a.otherAnchors() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			var theirs []issuedToken
			err := a.o.Client.Post(cctx, n.OverlayIPs[0], control.PathTokens, book, &theirs)
			if err == nil {
				err = a.takeTokens(theirs)
			}
			if err != nil {
				a.log.Debug("token book", "anchor", n.Name, "err", err)
				mu.Lock()
				all = false
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return all
}

// tokensChangedNow wakes syncTokens and expireTokens.
func (a *Anchor) tokensChangedNow() {
	for _, c := range []chan struct{}{a.tokensChanged, a.peersChanged} {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

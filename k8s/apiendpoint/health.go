package apiendpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// watch runs a health round every Interval, a full one every
// FullInterval, and a full one at once when asked.
func (e *Endpoint) watch(ctx context.Context) {
	t := time.NewTicker(e.o.Interval)
	defer t.Stop()
	lastFull := time.Now()
	for {
		full := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			full = time.Since(lastFull) >= e.o.FullInterval
		case <-e.kick:
			full = true
			t.Reset(e.o.Interval) // the round just made counts as the periodic one
		}
		if e.round(ctx, full) {
			lastFull = time.Now()
		}
	}
}

// recheck asks for a health round now; asks made before it runs are one.
func (e *Endpoint) recheck() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// round probes the current target and those preferred to it, or every
// target (full, or when the current one fails), picks the current one and
// cuts the proxied connections that should not stay where they are. It
// tells whether it probed every target.
func (e *Endpoint) round(ctx context.Context, full bool) bool {
	targets := dedup(e.o.Targets())
	e.mu.Lock()
	prevHealthy, prevCurrent := e.healthy, e.current
	e.mu.Unlock()
	probed := make([]bool, len(targets))
	errs := make([]error, len(targets))
	probe := func(which func(i int) bool) {
		var wg sync.WaitGroup
		for i, t := range targets {
			if !probed[i] && which(i) {
				probed[i] = true
				// At once, so that a dead target delays no other.
				wg.Go(func() { errs[i] = e.probe(ctx, t) })
			}
		}
		wg.Wait()
	}
	cur := slices.Index(targets, prevCurrent)
	if full || cur < 0 {
		full = true
		probe(func(int) bool { return true })
	} else {
		probe(func(i int) bool { return i <= cur })
		if errs[cur] != nil {
			full = true
			probe(func(int) bool { return true })
		}
	}
	if ctx.Err() != nil {
		return false // the probes failed for stopping, not for the targets
	}
	for i, t := range targets {
		if !probed[i] {
			// Not probed this round: as last seen (never seen: not
			// healthy, which only changes the dial order).
			if !prevHealthy[t] {
				errs[i] = errNotProbed
			}
		}
	}

	healthy := make(map[string]bool, len(targets))
	current := ""
	for i, t := range targets {
		healthy[t] = errs[i] == nil
		if current == "" && healthy[t] {
			current = t
		}
	}
	e.mu.Lock()
	was, prev := e.healthy, e.current
	e.targets, e.healthy, e.current = targets, healthy, current
	var cut []*pipe
	for p := range e.conns {
		// A removed target is left always; an unhealthy one only when
		// another is healthy: else there is nowhere better to go, and an
		// apiserver that is not ready may still serve some requests.
		// One to a target after a healthy current one goes too: back to
		// the preferred apiserver (a control-plane node's own, whose
		// clients then cross no link).
		ok, listed := healthy[p.target]
		after := current != "" && slices.Index(targets, p.target) > slices.Index(targets, current)
		if !listed || (!ok && current != "") || after {
			cut = append(cut, p)
		}
	}
	e.mu.Unlock()

	for i, t := range targets {
		if !probed[i] {
			continue
		}
		if ok, seen := was[t]; !seen || ok != healthy[t] {
			if healthy[t] {
				e.log.Info("apiserver healthy", "target", t)
			} else {
				e.log.Warn("apiserver unhealthy", "target", t, "err", errs[i])
			}
		}
	}
	if current != prev {
		if current == "" {
			e.log.Warn("no apiserver healthy; trying each in turn", "targets", targets)
		} else {
			e.log.Info("apiserver endpoint moved", "target", current, "from", prev)
		}
	}
	if len(cut) > 0 {
		e.log.Info("closing connections to apiservers left", "count", len(cut))
		for _, p := range cut {
			p.close()
		}
	}
	return full
}

// errNotProbed marks a target not probed yet.
var errNotProbed = errors.New("not probed yet")

// probe asks target for /readyz, anonymously: any 200 is healthy.
func (e *Endpoint) probe(ctx context.Context, target string) error {
	ctx, cancel := context.WithTimeout(ctx, e.o.DialTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+target+"/readyz", nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	res, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err) // names the URL
	}
	defer res.Body.Close()
	// Read to the end (bounded) so that the connection is kept for the
	// next round.
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("probe: /readyz answered %s", res.Status)
	}
	return nil
}

// dialOrder lists the targets to dial for a new connection: the current
// one, the other healthy ones, then the rest, each in the preferred order.
func (e *Endpoint) dialOrder() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	order := make([]string, 0, len(e.targets))
	if e.current != "" {
		order = append(order, e.current)
	}
	for _, t := range e.targets {
		if e.healthy[t] && t != e.current {
			order = append(order, t)
		}
	}
	for _, t := range e.targets {
		if !e.healthy[t] {
			order = append(order, t)
		}
	}
	return order
}

// dedup drops empty and repeated targets, keeping the first of each.
func dedup(targets []string) []string {
	out := make([]string, 0, len(targets))
	for _, t := range targets {
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

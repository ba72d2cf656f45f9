package anchor

import (
	"net/http"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/membership"
)

// SetHome records what member name reports of its home, and the zone
// decided from it (membership.ChooseZone): its record is signed again,
// with the next revision, when either changed. It returns the record.
func (a *Anchor) SetHome(name string, rep control.HomeReport) (membership.Node, error) {
	if a.restored.Load() {
		// Its records may be older than the cluster's: it signs none yet.
		return membership.Node{}, control.Unavailable(ErrRestored)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.o.Store.Current()
	n, ok := m.Find(name)
	if !ok {
		return membership.Node{}, control.Refused("node %q is not a member", name)
	}
	zone, fixed := membership.ChooseZone(m.Nodes, n, rep.Home, rep.Zone)
	home := rep.Home
	if home == "" {
		home = n.Home // nothing found this time: what was known stays
	}
	if n.Zone == zone && n.ZoneFixed == fixed && n.Home == home {
		return n, nil
	}
	was := n.Zone
	n.Zone, n.ZoneFixed, n.Home, n.Revision = zone, fixed, home, n.Revision+1
	if err := a.publish(n); err != nil {
		return membership.Node{}, control.Unavailable(err)
	}
	a.log.Info("node's zone", "node", n.Name, "zone", zone, "was", was, "fixed", fixed)
	a.Kick()
	return n, nil
}

// handleHome serves PathHome: the caller's own report only.
func (a *Anchor) handleHome(w http.ResponseWriter, r *http.Request) {
	member, err := control.RequireCaller(r, "a home report")
	if err != nil {
		control.WriteError(w, err)
		return
	}
	rep, err := control.DecodeHomeReport(r.Body)
	if err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	n, err := a.SetHome(member.Name, rep)
	if err != nil {
		a.log.Warn("home report refused", "node", member.Name, "err", err)
		control.WriteError(w, err)
		return
	}
	s, err := membership.Sign(a.o.Signer, membership.KindNode, n)
	if err != nil {
		control.WriteError(w, control.Unavailable(err))
		return
	}
	control.WriteJSON(w, http.StatusOK, s)
}

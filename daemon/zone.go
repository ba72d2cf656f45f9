package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hepto-net/hepto/anchor"
	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/home"
	"github.com/hepto-net/hepto/membership"
)

// homeCheck is how often a node looks at its LAN again: a machine moved
// to another home is seen within it. Looking costs two netlink reads;
// only a change is sent.
const homeCheck = 5 * time.Minute

// homeReporter tells an anchor which home this node is in, when its
// record does not say so yet: at start, and when its LAN or --zone
// changes. The anchor decides the zone (membership.ChooseZone) and signs
// the record again; every node, and the Node's label, follow.
type homeReporter struct {
	n      *node
	zone   string         // --zone
	anchor *anchor.Anchor // this node's own anchor duties; nil elsewhere
	client *control.Client
	log    *slog.Logger
}

func (h *homeReporter) run(ctx context.Context) error {
	backoff := time.Second
	for {
		wait := homeCheck
		if err := h.report(ctx); err != nil {
			h.log.Warn("home report", "err", err, "retry_in", backoff)
			wait, backoff = backoff, min(2*backoff, homeCheck)
		} else {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// report sends this node's home to an anchor, if its record differs.
func (h *homeReporter) report(ctx context.Context) error {
	fp, err := home.Find(h.n.cluster.Name)
	if err != nil && !errors.Is(err, home.ErrNoGateway) {
		return err
	}
	mem := h.n.store.Current()
	me, ok := mem.Find(h.n.self.Name)
	if !ok || upToDate(me, fp, h.zone) {
		return nil
	}
	rep := control.HomeReport{Home: fp, Zone: h.zone}
	if h.anchor != nil {
		_, err := h.anchor.SetHome(me.Name, rep)
		return err
	}
	err = errors.New("no anchor")
	for _, a := range mem.Nodes {
		if !a.IsAnchor() {
			continue
		}
		var s membership.Signed
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = h.client.Post(actx, a.OverlayIPs[0], control.PathHome, rep, &s)
		cancel()
		if err == nil {
			// The anchor pushes the record too; adopting it now shows it at
			// once.
			_, err = h.n.store.Adopt(membership.NewSet(s))
			return err
		}
	}
	return err
}

// upToDate: record me already says what the node found (fp) and was told
// (zone).
func upToDate(me membership.Node, fp, zone string) bool {
	if fp != "" && fp != me.Home {
		return false
	}
	if zone != "" {
		return me.ZoneFixed && me.Zone == zone
	}
	return !me.ZoneFixed && me.Zone != ""
}

// zoneOf is this node's zone as the membership has it now.
func zoneOf(n *node) string {
	me, _ := n.store.Current().Find(n.self.Name)
	return me.Zone
}

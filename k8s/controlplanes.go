package k8s

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/k8s/controlplane"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/membership"
)

// controlPlaneCallTimeout bounds a call to another control-plane node: an
// etcd membership change waits for a quorum.
const controlPlaneCallTimeout = 30 * time.Second

// joinControlPlane is controlplane.Options.Join: it asks the other
// control-plane nodes, lowest index first, to let this one in.
func (n *Node) joinControlPlane(ctx context.Context, peerURL string) (controlplane.Joined, error) {
	var others []membership.Node
	for _, m := range controlPlanes(n.o.Members()) {
		if m.Name != n.o.NodeName && len(m.OverlayIPs) > 0 {
			others = append(others, m)
		}
	}
	if len(others) == 0 {
		return controlplane.Joined{}, controlplane.ErrFirst
	}
	var errs []error
	for _, m := range others {
		var j control.ControlPlaneJoin
		req := control.ControlPlaneJoinRequest{PeerURL: peerURL}
		cctx, cancel := context.WithTimeout(ctx, controlPlaneCallTimeout)
		err := n.o.Client.Post(cctx, m.OverlayIPs[0], control.PathControlPlaneJoin, req, &j)
		cancel()
		if err == nil {
			return controlplane.Joined{PKI: j.PKI, InitialCluster: j.InitialCluster}, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
	}
	return controlplane.Joined{}, errors.Join(errs...)
}

// handleControlPlaneJoin lets a member with the control-plane role into
// etcd, at a peer URL on its own overlay address. The call must be signed
// by the member's hepto (control.Caller): it hands out the CAs.
func (n *Node) handleControlPlaneJoin(w http.ResponseWriter, r *http.Request) {
	m, err := control.RequireCaller(r, "joining the control plane")
	if err != nil {
		control.WriteError(w, err)
		return
	}
	if !m.IsControlPlane() {
		control.WriteError(w, control.Refused("only members with the control-plane role join the control plane"))
		return
	}
	var req control.ControlPlaneJoinRequest
	if err := control.Decode(r.Body, &req); err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	u, err := url.Parse(req.PeerURL)
	if err != nil || u.Scheme != "https" || u.Path != "" {
		control.WriteError(w, control.BadRequest(fmt.Errorf("peer URL %q: want https://OVERLAY_ADDRESS:PORT", req.PeerURL)))
		return
	}
	if a, err := netip.ParseAddr(u.Hostname()); err != nil || !slices.Contains(m.OverlayIPs, a) {
		control.WriteError(w, control.Refused("peer URL %q is not on %s's overlay address", req.PeerURL, m.Name))
		return
	}
	j, err := n.cp.AddMember(r.Context(), m.Name, req.PeerURL)
	if err != nil {
		control.WriteError(w, control.Unavailable(err))
		return
	}
	control.WriteJSON(w, http.StatusOK, control.ControlPlaneJoin{PKI: j.PKI, InitialCluster: j.InitialCluster})
}

// handleEtcdRemove removes a node's etcd member, for an anchor removing
// the node from the cluster.
func (n *Node) handleEtcdRemove(w http.ResponseWriter, r *http.Request) {
	m, err := control.RequireCaller(r, "removing an etcd member")
	if err != nil {
		control.WriteError(w, err)
		return
	}
	if !(m.IsAnchor() || m.IsControlPlane()) {
		control.WriteError(w, control.Refused("etcd members are removed by anchors and control-plane nodes only"))
		return
	}
	var req control.EtcdRemoveRequest
	if err := control.Decode(r.Body, &req); err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	err = n.cp.RemoveMember(r.Context(), req.Name)
	switch {
	case errors.Is(err, controlplane.ErrQuorum):
		control.WriteError(w, control.Refused("%s", err.Error()))
	case err != nil:
		control.WriteError(w, control.Unavailable(err))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// controlPlaneStatus is etcd's membership for status, nil where no etcd
// runs.
func (n *Node) controlPlaneStatus() *localapi.ControlPlaneStatus {
	if n.cp == nil {
		return nil
	}
	ms, err := n.cp.EtcdMembers()
	if err != nil {
		return nil
	}
	out := &localapi.ControlPlaneStatus{Leader: ms.Leader, Members: []localapi.EtcdMember{}}
	for _, m := range ms.Members {
		out.Members = append(out.Members, localapi.EtcdMember{Name: m.Name, PeerURL: m.PeerURL, Learner: m.Learner})
	}
	return out
}

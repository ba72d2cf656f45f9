package k8s

import (
	"fmt"
	"net/http"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/k8s/localvolume"
)

// handleVolume serves PathVolumes: the control plane's provisioner
// (provision.go) makes and deletes this node's local volumes.
func (n *Node) handleVolume(w http.ResponseWriter, r *http.Request) {
	m, err := control.RequireCaller(r, "local volumes")
	if err != nil {
		control.WriteError(w, err)
		return
	}
	if !m.IsControlPlane() {
		control.WriteError(w, control.Refused("local volumes are made and deleted by control-plane nodes only"))
		return
	}
	var req control.VolumeRequest
	if err := control.Decode(r.Body, &req); err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	dir := localvolume.Dir(n.layout.Volumes)
	var resp control.VolumeResponse
	switch req.Op {
	case control.VolumeCreate:
		resp.Path, err = dir.Create(req.Name)
	case control.VolumeDelete:
		err = dir.Delete(req.Name)
	default:
		err = fmt.Errorf("unknown volume operation %q", req.Op)
	}
	if err == nil {
		resp.Available, resp.Capacity, err = dir.Space()
	}
	if err != nil {
		control.WriteError(w, control.BadRequest(err))
		return
	}
	n.log.Info("local volume", "op", req.Op, "volume", req.Name, "by", m.Name)
	control.WriteJSON(w, http.StatusOK, resp)
}

// volumeSpace is the VolumeSpace annotation's value: the disk's space
// for volumes, the available part rounded down to 1 % of the disk (at
// least 64 MiB), so that the Node is written again only for a change
// that counts. "" when unknown.
func (n *Node) volumeSpace() string {
	avail, capacity, err := localvolume.Dir(n.layout.Volumes).Space()
	if err != nil {
		return ""
	}
	step := max(capacity/100, 64<<20)
	return fmt.Sprintf("%d/%d", avail/step*step, capacity)
}

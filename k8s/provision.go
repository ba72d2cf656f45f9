package k8s

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/utils/ptr"

	"github.com/hepto-net/hepto/control"
)

// storage is runStorage's state: the listers it reads.
type storage struct {
	n          *Node
	client     kubernetes.Interface
	claims     corelisters.PersistentVolumeClaimLister
	volumes    corelisters.PersistentVolumeLister
	classes    storagelisters.StorageClassLister
	nodes      corelisters.NodeLister
	capacities storagelisters.CSIStorageCapacityLister
	said       map[types.UID]string // each claim's last event: said once
}

// sync brings claims, volumes and capacities in line; what fails is
// logged, and tried again on the next pass.
func (s *storage) sync(ctx context.Context) {
	classes := map[string]*storagev1.StorageClass{}
	all, _ := s.classes.List(labels.Everything())
	for _, c := range all {
		if c.Provisioner == LocalProvisioner {
			classes[c.Name] = c
		}
	}
	claims, _ := s.claims.List(labels.Everything())
	live := map[types.UID]bool{}
	for _, pvc := range claims {
		live[pvc.UID] = true
	}
	for uid := range s.said {
		if !live[uid] {
			delete(s.said, uid) // the claim is gone
		}
	}
	for _, pvc := range claims {
		class := classes[ptr.Deref(pvc.Spec.StorageClassName, "")]
		if class == nil {
			continue
		}
		var err error
		switch pvc.Status.Phase {
		case corev1.ClaimPending:
			err = s.provision(ctx, pvc, class)
		case corev1.ClaimBound:
			err = s.expand(ctx, pvc, class)
		}
		if err != nil && ctx.Err() == nil {
			s.n.log.Warn("local volumes", "claim", pvc.Namespace+"/"+pvc.Name, "err", err)
		}
	}
	volumes, _ := s.volumes.List(labels.Everything())
	for _, pv := range volumes {
		if err := s.reclaim(ctx, pv); err != nil && ctx.Err() == nil {
			s.n.log.Warn("local volumes", "volume", pv.Name, "err", err)
		}
	}
	if err := s.syncCapacities(ctx, classes); err != nil && ctx.Err() == nil {
		s.n.log.Warn("local volumes: capacities", "err", err)
	}
}

// volumeName is the volume of a claim: one name whoever provisions it.
func volumeName(pvc *corev1.PersistentVolumeClaim) string { return "pvc-" + string(pvc.UID) }

// provision makes the volume of a claim waiting for it: once the
// scheduler chose its node, and the volume controller handed it to this
// provisioner.
func (s *storage) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim, class *storagev1.StorageClass) error {
	node := pvc.Annotations[annSelectedNode]
	if pvc.Spec.VolumeName != "" || node == "" ||
		(pvc.Annotations[annProvisioner] != LocalProvisioner && pvc.Annotations[annBetaProvisioner] != LocalProvisioner) {
		return nil
	}
	name := volumeName(pvc)
	if _, err := s.volumes.Get(name); err == nil {
		return nil // made; the volume controller binds it
	}
	size, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if refusal := checkClaim(pvc, ok); refusal != "" {
		s.claimEvent(ctx, pvc, corev1.EventTypeWarning, "ProvisioningFailed", refusal)
		return nil
	}
	if avail, _, known := s.space(node); known && size.Value() > avail {
		// The scheduler saw more room (capacities lag): it chooses again.
		s.claimEvent(ctx, pvc, corev1.EventTypeWarning, "ProvisioningFailed",
			fmt.Sprintf("node %s has %s free for local volumes, the claim asks %s: rescheduling", node, quantity(avail), size.String()))
		return s.unselect(ctx, pvc)
	}
	var resp control.VolumeResponse
	if err := s.onNode(ctx, node, control.VolumeRequest{Op: control.VolumeCreate, Name: name}, &resp); err != nil {
		s.claimEvent(ctx, pvc, corev1.EventTypeWarning, "ProvisioningFailed", fmt.Sprintf("node %s: %v", node, err))
		return err
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{annProvisionedBy: LocalProvisioner}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: ptr.Deref(class.ReclaimPolicy, corev1.PersistentVolumeReclaimDelete),
			StorageClassName:              class.Name,
			MountOptions:                  class.MountOptions,
			VolumeMode:                    ptr.To(corev1.PersistentVolumeFilesystem),
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: resp.Path}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
		},
	}
	if _, err := s.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("volume %s: %w", name, err)
	}
	s.claimEvent(ctx, pvc, corev1.EventTypeNormal, "ProvisioningSucceeded", fmt.Sprintf("local volume %s on node %s (%s)", name, node, resp.Path))
	s.n.log.Info("local volume provisioned", "claim", pvc.Namespace+"/"+pvc.Name, "volume", name, "node", node, "size", size.String())
	return nil
}

// checkClaim says why a claim cannot have a local volume ("": it can).
func checkClaim(pvc *corev1.PersistentVolumeClaim, sized bool) string {
	switch {
	case !sized:
		return "the claim requests no storage size"
	case ptr.Deref(pvc.Spec.VolumeMode, corev1.PersistentVolumeFilesystem) == corev1.PersistentVolumeBlock:
		return "local volumes are directories: volumeMode Block is not supported"
	case pvc.Spec.DataSource != nil || pvc.Spec.DataSourceRef != nil:
		return "local volumes start empty: a data source (snapshot, clone) is not supported"
	}
	for _, m := range pvc.Spec.AccessModes {
		if m != corev1.ReadWriteOnce && m != corev1.ReadWriteOncePod {
			return fmt.Sprintf("a local volume is on one node: access mode %s is not supported (ReadWriteOnce, ReadWriteOncePod)", m)
		}
	}
	return ""
}

// unselect takes the scheduler's choice of node away from a claim: it
// chooses again.
func (s *storage) unselect(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	patch := []byte(`{"metadata":{"annotations":{"` + annSelectedNode + `":null}}}`)
	_, err := s.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Patch(ctx, pvc.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

// expand grows a bound claim's volume to its new request, where the class
// allows it and the node's disk has the room: a directory has no size to
// change, the claim's and the volume's are recorded, the claim's first (the
// volume controller copies a volume's capacity to its claim, and would
// record a resize without its allocation).
func (s *storage) expand(ctx context.Context, pvc *corev1.PersistentVolumeClaim, class *storagev1.StorageClass) error {
	want, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok || !ptr.Deref(class.AllowVolumeExpansion, false) {
		return nil
	}
	pv, err := s.volumes.Get(pvc.Spec.VolumeName)
	if err != nil || pv.Annotations[annProvisionedBy] != LocalProvisioner {
		return nil
	}
	have := pvc.Status.Capacity[corev1.ResourceStorage]
	pvCap := pv.Spec.Capacity[corev1.ResourceStorage]
	if want.Cmp(have) <= 0 && want.Cmp(pvCap) <= 0 {
		return nil
	}
	node := volumeNode(pv)
	if grow := want.Value() - pvCap.Value(); grow > 0 {
		if avail, _, known := s.space(node); known && grow > avail {
			s.claimEvent(ctx, pvc, corev1.EventTypeWarning, "VolumeResizeFailed",
				fmt.Sprintf("node %s has %s free for local volumes, growing the volume takes %s", node, quantity(avail), quantity(grow)))
			return nil
		}
	}
	if want.Cmp(have) > 0 {
		pvc = pvc.DeepCopy()
		pvc.Status.Capacity[corev1.ResourceStorage] = want
		if pvc.Status.AllocatedResources == nil {
			pvc.Status.AllocatedResources = corev1.ResourceList{}
		}
		pvc.Status.AllocatedResources[corev1.ResourceStorage] = want
		pvc.Status.Conditions = slices.DeleteFunc(pvc.Status.Conditions, func(c corev1.PersistentVolumeClaimCondition) bool {
			return c.Type == corev1.PersistentVolumeClaimResizing || c.Type == corev1.PersistentVolumeClaimFileSystemResizePending
		})
		pvc.Status.AllocatedResourceStatuses = nil
		if _, err := s.client.CoreV1().PersistentVolumeClaims(pvc.Namespace).UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("claim status: %w", err)
		}
	}
	if want.Cmp(pvCap) > 0 {
		pv = pv.DeepCopy()
		pv.Spec.Capacity[corev1.ResourceStorage] = want
		if _, err := s.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("volume %s: %w", pv.Name, err)
		}
		s.claimEvent(ctx, pvc, corev1.EventTypeNormal, "VolumeResizeSuccessful", fmt.Sprintf("local volume %s grown to %s", pv.Name, want.String()))
	}
	return nil
}

// reclaim deletes a released volume of reclaim policy Delete: its
// directory on its node, then the object. A volume whose node left the
// cluster has no directory left to delete.
func (s *storage) reclaim(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.Annotations[annProvisionedBy] != LocalProvisioner || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		(pv.Status.Phase != corev1.VolumeReleased && pv.Status.Phase != corev1.VolumeFailed) || pv.DeletionTimestamp != nil {
		return nil
	}
	node := volumeNode(pv)
	if _, member := memberNamed(s.n.o.Members(), node); member {
		if err := s.onNode(ctx, node, control.VolumeRequest{Op: control.VolumeDelete, Name: pv.Name}, &control.VolumeResponse{}); err != nil {
			return fmt.Errorf("deleting on node %s: %w", node, err)
		}
	}
	err := s.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pv.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	s.n.log.Info("local volume deleted", "volume", pv.Name, "node", node)
	return nil
}

// volumeNode is the node a local volume is on.
func volumeNode(pv *corev1.PersistentVolume) string {
	if a := pv.Spec.NodeAffinity; a != nil && a.Required != nil {
		for _, t := range a.Required.NodeSelectorTerms {
			for _, e := range t.MatchExpressions {
				if e.Key == corev1.LabelHostname && len(e.Values) == 1 {
					return e.Values[0]
				}
			}
		}
	}
	return ""
}

// onNode asks node's hepto to create or delete a volume.
func (s *storage) onNode(ctx context.Context, node string, req control.VolumeRequest, resp *control.VolumeResponse) error {
	m, ok := memberNamed(s.n.o.Members(), node)
	if !ok || len(m.OverlayIPs) == 0 {
		return fmt.Errorf("%s is not a member of the cluster", node)
	}
	if s.n.o.Client == nil {
		return errors.New("no control client")
	}
	rctx, cancel := context.WithTimeout(ctx, volumeRequestBudget)
	defer cancel()
	return s.n.o.Client.Post(rctx, m.OverlayIPs[0], control.PathVolumes, req, resp)
}

// space is what node announced of its disk for volumes.
func (s *storage) space(node string) (available, capacity int64, known bool) {
	n, err := s.nodes.Get(node)
	if err != nil {
		return 0, 0, false
	}
	return parseVolumeSpace(n.Annotations[VolumeSpace])
}

// parseVolumeSpace reads VolumeSpace's "AVAILABLE/CAPACITY".
func parseVolumeSpace(v string) (available, capacity int64, ok bool) {
	a, c, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, false
	}
	av, err1 := strconv.ParseInt(a, 10, 64)
	cv, err2 := strconv.ParseInt(c, 10, 64)
	if err1 != nil || err2 != nil || av < 0 || cv < av {
		return 0, 0, false
	}
	return av, cv, true
}

func quantity(b int64) string { return resource.NewQuantity(b, resource.BinarySI).String() }

// syncCapacities keeps one CSIStorageCapacity per node and local class,
// from the Nodes' VolumeSpace, and deletes those of Nodes gone.
func (s *storage) syncCapacities(ctx context.Context, classes map[string]*storagev1.StorageClass) error {
	want := map[string]*storagev1.CSIStorageCapacity{}
	nodes, _ := s.nodes.List(labels.Everything())
	for _, node := range nodes {
		avail, _, ok := parseVolumeSpace(node.Annotations[VolumeSpace])
		if !ok {
			continue
		}
		for class := range classes {
			c := &storagev1.CSIStorageCapacity{
				ObjectMeta: metav1.ObjectMeta{Name: capacityName(node.Name, class), Namespace: capacityNamespace,
					Labels: map[string]string{capacityNodeLabel: node.Name, managedByLabel: managedBy}},
				NodeTopology:     &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelHostname: node.Name}},
				StorageClassName: class,
				Capacity:         resource.NewQuantity(avail, resource.BinarySI),
			}
			want[c.Name] = c
		}
	}
	have, _ := s.capacities.CSIStorageCapacities(capacityNamespace).List(labels.SelectorFromSet(labels.Set{managedByLabel: managedBy}))
	var errs []error
	api := s.client.StorageV1().CSIStorageCapacities(capacityNamespace)
	for _, h := range have {
		w, ok := want[h.Name]
		delete(want, h.Name)
		switch {
		case !ok:
			errs = append(errs, ignoreNotFound(api.Delete(ctx, h.Name, metav1.DeleteOptions{})))
		case h.Capacity == nil || h.Capacity.Cmp(*w.Capacity) != 0:
			u := h.DeepCopy()
			u.Capacity = w.Capacity
			_, err := api.Update(ctx, u, metav1.UpdateOptions{})
			errs = append(errs, err)
		}
	}
	for _, w := range want {
		_, err := api.Create(ctx, w, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			err = nil
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// capacityName names the capacity of a node's class: both names may be
// long, the object's is bounded.
func capacityName(node, class string) string {
	h := sha256.Sum256([]byte(node + "/" + class))
	return "local-" + hex.EncodeToString(h[:8])
}

// claimEvent records an event on a claim (kubectl describe shows it).
func (s *storage) claimEvent(ctx context.Context, pvc *corev1.PersistentVolumeClaim, typ, reason, msg string) {
	if s.said == nil {
		s.said = map[types.UID]string{}
	}
	if key := reason + "\x00" + msg; s.said[pvc.UID] != key {
		s.said[pvc.UID] = key
	} else {
		return
	}
	ref := corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID}
	s.n.recordEvent(ctx, s.client, ref, storageComponent, typ, reason, msg)
}

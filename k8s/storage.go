package k8s

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// Local persistent volumes: hepto's provisioner makes each claim of a
// class whose provisioner is LocalProvisioner a directory on the node the
// scheduler chose for its first pod (WaitForFirstConsumer), and a `local`
// PersistentVolume bound to that node. It runs on the control-plane nodes,
// with the cluster's credentials; the directories are made and deleted by
// each node's hepto (PathVolumes), which announces its free space in its
// Node's annotation VolumeSpace. The provisioner turns those into
// CSIStorageCapacity objects, so that the scheduler places a claim only on
// a node with room for it (the capacity tracking of a CSI driver; the
// CSIDriver object exists for that alone, no CSI plugin runs).
const (
	LocalProvisioner = "local.hepto.net"
	// DefaultStorageClass is the class hepto makes, the cluster's default.
	DefaultStorageClass = "local"
	// VolumeSpace is a Node's annotation: "AVAILABLE/CAPACITY" bytes of
	// the disk its local volumes are on.
	VolumeSpace = "hepto.net/volume-space"

	annSelectedNode     = "volume.kubernetes.io/selected-node"
	annProvisioner      = "volume.kubernetes.io/storage-provisioner"
	annBetaProvisioner  = "volume.beta.kubernetes.io/storage-provisioner"
	annProvisionedBy    = "pv.kubernetes.io/provisioned-by"
	annDefaultClass     = "storageclass.kubernetes.io/is-default-class"
	capacityNamespace   = "kube-system"
	capacityNodeLabel   = "hepto.net/node"
	managedByLabel      = "app.kubernetes.io/managed-by"
	storageCheck        = 30 * time.Second
	storageComponent    = "hepto-local-volumes"
	volumeRequestBudget = 10 * time.Second
)

// runStorage is the provisioner's loop: every change to claims, volumes,
// classes or Nodes, and every storageCheck (retries), brings them in line.
// Several control-plane nodes may run it at once: each step is idempotent
// (a volume is named after its claim's UID).
func (n *Node) runStorage(ctx context.Context) error {
	if err := n.cp.Ready(ctx); err != nil {
		return nil
	}
	client, err := kubernetes.NewForConfig(n.cp.AdminConfig())
	if err != nil {
		return err
	}
	if err := ensureStorageClass(ctx, client); err != nil {
		return err
	}
	f := informers.NewSharedInformerFactory(client, 0)
	s := &storage{n: n, client: client,
		claims: f.Core().V1().PersistentVolumeClaims().Lister(), volumes: f.Core().V1().PersistentVolumes().Lister(),
		classes: f.Storage().V1().StorageClasses().Lister(), nodes: f.Core().V1().Nodes().Lister(),
		capacities: f.Storage().V1().CSIStorageCapacities().Lister(),
	}
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	onChange := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() }, DeleteFunc: func(any) { poke() }}
	var synced []cache.InformerSynced
	for _, inf := range []cache.SharedIndexInformer{f.Core().V1().PersistentVolumeClaims().Informer(), f.Core().V1().PersistentVolumes().Informer(),
		f.Storage().V1().StorageClasses().Informer(), f.Core().V1().Nodes().Informer(), f.Storage().V1().CSIStorageCapacities().Informer()} {
		if _, err := inf.AddEventHandler(onChange); err != nil {
			return err
		}
		synced = append(synced, inf.HasSynced)
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil
	}
	tick := time.NewTicker(storageCheck)
	defer tick.Stop()
	for {
		s.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-tick.C:
		}
	}
}

// ensureStorageClass makes the default class and the CSIDriver object
// that turns on capacity tracking, if they are not there; a class the
// administrator changed is left as it is.
func ensureStorageClass(ctx context.Context, c kubernetes.Interface) error {
	class := &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: DefaultStorageClass, Annotations: map[string]string{annDefaultClass: "true"}},
		Provisioner:          LocalProvisioner,
		ReclaimPolicy:        ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode:    ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
		AllowVolumeExpansion: ptr.To(true),
	}
	if _, err := c.StorageV1().StorageClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("storage class %s: %w", class.Name, err)
	}
	driver := &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: LocalProvisioner},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired: ptr.To(false), StorageCapacity: ptr.To(true), PodInfoOnMount: ptr.To(false),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent},
		},
	}
	if _, err := c.StorageV1().CSIDrivers().Create(ctx, driver, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("CSIDriver %s: %w", driver.Name, err)
	}
	return nil
}

package kubelet

import (
	"fmt"

	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/kubelet/cm"
)

// ensureCgroupRoot makes the node's cgroup parent, which the kubelet wants
// to exist, with the kubelet's own cgroup manager (cgroup v1 or v2).
func ensureCgroupRoot(logger klog.Logger, root string) error {
	subs, err := cm.GetCgroupSubsystems()
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	mgr := cm.NewCgroupManager(logger, subs, "cgroupfs")
	name := cm.ParseCgroupfsToCgroupName(root)
	if mgr.Exists(name) {
		return nil
	}
	if err := mgr.Create(logger, &cm.CgroupConfig{Name: name, ResourceParameters: &cm.ResourceConfig{}}); err != nil {
		return fmt.Errorf("cgroup %s: %w", root, err)
	}
	return nil
}

package kubelet

import (
	"errors"
	"fmt"

	utilsysctl "k8s.io/component-helpers/node/util/sysctl"
)

// kernelDefaults are the kernel settings the kubelet wants (upstream's
// setupKernelTunables): overcommit on, the OOM killer rather than a
// panic, a reboot 10 s after a panic and on an oops, room for keys.
var kernelDefaults = map[string]int{
	utilsysctl.VMOvercommitMemory: utilsysctl.VMOvercommitMemoryAlways,
	utilsysctl.VMPanicOnOOM:       utilsysctl.VMPanicOnOOMInvokeOOMKiller,
	utilsysctl.KernelPanic:        utilsysctl.KernelPanicRebootTimeout,
	utilsysctl.KernelPanicOnOops:  utilsysctl.KernelPanicOnOopsAlways,
	utilsysctl.RootMaxKeys:        utilsysctl.RootMaxKeysSetting,
	utilsysctl.RootMaxBytes:       utilsysctl.RootMaxBytesSetting,
}

// setKernelDefaults sets them, as the kubelet would, so that the kubelet
// runs with protectKernelDefaults: it then changes no kernel setting
// itself, and stops if one is changed under it. An error (a read-only
// /proc/sys, in a container) means the kubelet runs without.
func setKernelDefaults(s utilsysctl.Interface) error {
	var errs []error
	for name, want := range kernelDefaults {
		v, err := s.GetSysctl(name)
		if err == nil && v != want {
			err = s.SetSysctl(name, want)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

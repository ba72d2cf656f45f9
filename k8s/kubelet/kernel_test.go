package kubelet

import (
	"errors"
	"testing"
)

// fakeSysctl is a kernel's settings; readOnly refuses every change.
type fakeSysctl struct {
	v        map[string]int
	readOnly bool
	sets     int
}

func (f *fakeSysctl) GetSysctl(name string) (int, error) { return f.v[name], nil }

func (f *fakeSysctl) SetSysctl(name string, v int) error {
	if f.readOnly {
		return errors.New("read-only file system")
	}
	f.v[name] = v
	f.sets++
	return nil
}

// The kernel gets the kubelet's settings, changed only where they differ;
// a kernel that refuses is an error (the kubelet then runs without
// protectKernelDefaults).
func TestSetKernelDefaults(t *testing.T) {
	f := &fakeSysctl{v: map[string]int{}}
	for name, want := range kernelDefaults {
		f.v[name] = want
	}
	f.v["kernel/panic"] = 0
	if err := setKernelDefaults(f); err != nil || f.sets != 1 || f.v["kernel/panic"] != 10 {
		t.Errorf("err %v, %d changes, kernel/panic %d; want one change, to 10", err, f.sets, f.v["kernel/panic"])
	}
	f.v["vm/overcommit_memory"], f.readOnly = 0, true
	if err := setKernelDefaults(f); err == nil {
		t.Error("a read-only kernel setting that differs: no error")
	}
}

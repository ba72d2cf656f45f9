package lab

import (
	"context"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// Runtime runs CNI plugins on a host as a container runtime there would:
// through libcni, each plugin a process in the host's namespace.
type Runtime struct {
	Host *Host
	List *libcni.NetworkConfigList
	CNI  *libcni.CNIConfig
}

// NewRuntime finds plugins in path, and keeps libcni's cache of results in
// cacheDir.
func NewRuntime(h *Host, list *libcni.NetworkConfigList, path []string, cacheDir string) *Runtime {
	return &Runtime{Host: h, List: list, CNI: libcni.NewCNIConfigWithCacheDir(path, cacheDir, nil)}
}

// Attachment names an interface of a pod namespace.
type Attachment struct {
	ContainerID string
	Pod         *Host
	IfName      string // default eth0
	// CapabilityArgs, such as portMappings, go to the plugins that want them.
	CapabilityArgs map[string]any
}

// NetnsPath is where a host's namespace is mounted.
func (h *Host) NetnsPath() string { return filepath.Join(netnsDir, h.Netns) }

func (a Attachment) rt() *libcni.RuntimeConf {
	ifname := a.IfName
	if ifname == "" {
		ifname = "eth0"
	}
	rt := &libcni.RuntimeConf{ContainerID: a.ContainerID, IfName: ifname, CapabilityArgs: a.CapabilityArgs}
	if a.Pod != nil {
		rt.NetNS = a.Pod.NetnsPath()
	}
	return rt
}

// do runs f on a thread in the host's namespace: the plugins it starts are
// forked from that thread, so they run in that namespace too.
func (r *Runtime) do(f func() error) error { return r.Host.Do(f) }

// Add is CNI ADD of the whole list; the result is the last plugin's.
func (r *Runtime) Add(ctx context.Context, a Attachment) (*current.Result, error) {
	var res types.Result
	err := r.do(func() (err error) {
		res, err = r.CNI.AddNetworkList(ctx, r.List, a.rt())
		return err
	})
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(res)
}

// Del is CNI DEL, with the cached result of ADD as prevResult.
func (r *Runtime) Del(ctx context.Context, a Attachment) error {
	return r.do(func() error { return r.CNI.DelNetworkList(ctx, r.List, a.rt()) })
}

// Check is CNI CHECK, with the cached result of ADD as prevResult.
func (r *Runtime) Check(ctx context.Context, a Attachment) error {
	return r.do(func() error { return r.CNI.CheckNetworkList(ctx, r.List, a.rt()) })
}

// GC is CNI GC: every attachment but valid goes.
func (r *Runtime) GC(ctx context.Context, valid ...Attachment) error {
	args := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{}}
	for _, a := range valid {
		rt := a.rt()
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: rt.ContainerID, IfName: rt.IfName})
	}
	return r.do(func() error { return r.CNI.GCNetworkList(ctx, r.List, args) })
}

// Status is CNI STATUS.
func (r *Runtime) Status(ctx context.Context) error {
	return r.do(func() error { return r.CNI.GetStatusNetworkList(ctx, r.List) })
}

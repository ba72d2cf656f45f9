package cni

import (
	"fmt"
	"net"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/hepto-net/hepto/cni/ipam"
	"github.com/hepto-net/hepto/cni/netconf"
)

// Status says whether an ADD would give a pod a working network: the daemon
// runs (without it the pod reaches no other node) and every range has a
// free address.
func Status(args *skel.CmdArgs) error {
	conf, err := netconf.Parse(args.StdinData)
	if err != nil {
		return err
	}
	// A socket file left by a daemon that died refuses connections.
	c, err := net.DialTimeout("unix", conf.Socket(), time.Second)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "the hepto daemon is not running", err.Error())
	}
	c.Close()
	atts, err := ipam.Load(conf.IPAMDir())
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "cannot read the address store", err.Error())
	}
	for _, r := range conf.PodCIDRs {
		if ipam.Free(r, atts) == 0 {
			return types.NewError(types.ErrPluginNotAvailable, "pod range exhausted", fmt.Sprintf("every address of %v is in use", r))
		}
	}
	return nil
}

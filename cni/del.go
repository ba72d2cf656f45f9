package cni

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"

	"github.com/hepto-net/hepto/cni/ipam"
	"github.com/hepto-net/hepto/cni/netconf"
)

// Del removes the pod's veth and frees its addresses. It needs neither the
// pod's namespace nor prevResult, and succeeds when there is nothing left to
// remove.
func Del(args *skel.CmdArgs) error {
	conf, err := netconf.Parse(args.StdinData)
	if err != nil {
		return err
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	// The link first: addresses freed while the pod still held them could
	// be given to another pod.
	if err := deleteLink(h, hostVethName(args.ContainerID, args.IfName)); err != nil {
		return fmt.Errorf("delete veth: %w", err)
	}
	return release(conf, args.ContainerID, args.IfName)
}

func release(conf *netconf.Conf, id, ifname string) error {
	st, err := ipam.Open(conf.IPAMDir())
	if err != nil {
		return types.NewError(types.ErrIOFailure, "cannot open the address store", err.Error())
	}
	defer st.Close()
	st.Release(id, ifname)
	if err := st.Commit(); err != nil {
		return types.NewError(types.ErrIOFailure, "cannot free addresses", err.Error())
	}
	return nil
}

// GC frees the addresses, and removes the veths, of every attachment the
// runtime does not list as valid: those of an ADD that died half-way, or of
// a DEL that never came.
func GC(args *skel.CmdArgs) error {
	conf, err := netconf.Parse(args.StdinData)
	if err != nil {
		return err
	}
	valid := make(map[types.GCAttachment]bool, len(conf.ValidAttachments))
	for _, a := range conf.ValidAttachments {
		valid[a] = true
	}
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	st, err := ipam.Open(conf.IPAMDir())
	if err != nil {
		return types.NewError(types.ErrIOFailure, "cannot open the address store", err.Error())
	}
	defer st.Close()
	var errs []error
	for _, a := range st.Attachments() {
		if valid[types.GCAttachment{ContainerID: a.ContainerID, IfName: a.IfName}] {
			continue
		}
		// As in DEL: an address is freed only once its link is gone.
		if err := deleteLink(h, hostVethName(a.ContainerID, a.IfName)); err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %w", a.ContainerID, a.IfName, err))
			continue
		}
		st.Release(a.ContainerID, a.IfName)
	}
	if err := st.Commit(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

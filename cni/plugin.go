// Package cni is hepto's CNI plugin, hepto-cni: each pod gets a veth pair
// and an address of each of its node's pod ranges, routed by the node, so
// that it reaches every pod of the cluster through the overlay.
package cni

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/hepto-net/hepto/cni/netconf"
)

// Versions are the CNI specification versions the plugin speaks.
var Versions = netconf.Versions

// Funcs are the plugin's commands, for skel.
var Funcs = skel.CNIFuncs{Add: Add, Del: Del, Check: Check, GC: GC, Status: Status}

// Command hepto-cni is hepto's CNI plugin. Container runtimes run it, as the
// CNI specification says, with the network configuration the hepto daemon
// writes; see package cni.
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/hepto-net/hepto/cni"
)

var version = "dev"

func main() {
	skel.PluginMainFuncs(cni.Funcs, cni.Versions, "hepto-cni "+version+": pod networks of a hepto cluster")
}

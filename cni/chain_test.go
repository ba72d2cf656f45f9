package cni

import (
	"net/netip"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hepto-net/hepto/cni/netconf"
)

const chainConf = `{"cniVersion":"1.1.0","name":"hepto","type":"hepto-cni","stateDir":"/var/lib/hepto","podCIDRs":["10.78.1.0/24"]}`

// A prevResult given to ADD is kept, this plugin's result appended.
func TestChainKeepsPrevResult(t *testing.T) {
	conf := strings.Replace(chainConf, `"name"`, `"prevResult":{"cniVersion":"1.1.0",`+
		`"interfaces":[{"name":"other"}],"ips":[{"address":"192.0.2.5/24","interface":0}]},"name"`, 1)
	c, err := netconf.Parse([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	ours := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: "hepx"}, {Name: "eth0", Sandbox: "/run/netns/p"}},
		IPs:        []*current.IPConfig{{Interface: current.Int(1), Address: *hostPrefix(netip.MustParseAddr("10.78.1.2"))}},
	}
	got, err := chain(c.PrevResult, ours)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Interfaces) != 3 || len(got.IPs) != 2 || *got.IPs[0].Interface != 0 || *got.IPs[1].Interface != 2 || got.Interfaces[2].Name != "eth0" {
		t.Fatalf("%v", got)
	}
}

package netconf

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

const goodConf = `{"cniVersion":"1.1.0","name":"hepto","type":"hepto-cni","stateDir":"/var/lib/hepto",` +
	`"podCIDRs":["10.78.1.0/24","fd00:1:2:100::/64"]}`

func TestParse(t *testing.T) {
	c, err := Parse([]byte(goodConf))
	if err != nil {
		t.Fatal(err)
	}
	if c.MTU != DefaultMTU || len(c.PodCIDRs) != 2 || c.IPAMDir() != "/var/lib/hepto/cni/hepto" {
		t.Fatalf("%+v", c)
	}
}

func TestParseConfErrors(t *testing.T) {
	for _, tc := range []struct {
		conf string
		code uint
	}{
		{`{"cniVersion":`, types.ErrDecodingFailure},
		{`[1,2]`, types.ErrDecodingFailure},
		{`{"cniVersion":"1.1.0","name":"n","stateDir":"/s","podCIDRs":["10.0.0.0/33"]}`, types.ErrDecodingFailure},
		{strings.Replace(goodConf, "1.1.0", "9.9.9", 1), types.ErrIncompatibleCNIVersion},
		{strings.Replace(goodConf, `"cniVersion":"1.1.0",`, "", 1), types.ErrIncompatibleCNIVersion},
		{strings.Replace(goodConf, `"hepto"`, `"../x"`, 1), types.ErrInvalidNetworkConfig},
		{strings.Replace(goodConf, `"/var/lib/hepto"`, `"rel"`, 1), types.ErrInvalidNetworkConfig},
		{strings.Replace(goodConf, `10.78.1.0/24`, `10.78.1.1/24`, 1), types.ErrInvalidNetworkConfig},
		{strings.Replace(goodConf, `10.78.1.0/24`, `10.78.1.0/31`, 1), types.ErrInvalidNetworkConfig},
		{strings.Replace(goodConf, `fd00:1:2:100::/64`, `10.9.0.0/16`, 1), types.ErrInvalidNetworkConfig},
		{strings.Replace(goodConf, `"podCIDRs":["10.78.1.0/24","fd00:1:2:100::/64"]`, `"podCIDRs":[]`, 1), types.ErrInvalidNetworkConfig},
		{strings.Replace(goodConf, `"name"`, `"mtu":1000,"name"`, 1), types.ErrInvalidNetworkConfig},
		{strings.Replace(goodConf, `"name"`, `"prevResult":{"cniVersion":"1.1.0","ips":[{"address":"x"}]},"name"`, 1), types.ErrDecodingFailure},
	} {
		_, err := Parse([]byte(tc.conf))
		var e *types.Error
		if !errors.As(err, &e) || e.Code != tc.code {
			t.Errorf("%s: %v, want code %d", tc.conf, err, tc.code)
		}
	}
}

func TestConfList(t *testing.T) {
	pods := []netip.Prefix{netip.MustParsePrefix("10.78.3.0/24"), netip.MustParsePrefix("fd00:1:2:103::/64")}
	b, err := ConfList("hepto", 1400, "/var/lib/hepto", pods)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"type": "hepto-cni"`, `"cniVersion": "1.1.0"`, `"10.78.3.0/24"`, `"stateDir": "/var/lib/hepto"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("no %s in\n%s", want, b)
		}
	}
	if _, err := ConfList("hepto", 1400, "relative", pods); err == nil {
		t.Error("relative state directory accepted")
	}

	// Chained plugins follow hepto-cni, in order.
	b, err = ConfList("hepto", 1400, "/var/lib/hepto", pods, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}})
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Plugins []struct {
			Type         string          `json:"type"`
			Capabilities map[string]bool `json:"capabilities"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Plugins) != 2 || list.Plugins[0].Type != Type || list.Plugins[1].Type != "portmap" || !list.Plugins[1].Capabilities["portMappings"] {
		t.Errorf("chained conflist: %+v\n%s", list.Plugins, b)
	}
	if _, err := ConfList("hepto", 1400, "/var/lib/hepto", pods, map[string]any{"snat": true}); err == nil {
		t.Error("a chained plugin without a type accepted")
	}
}

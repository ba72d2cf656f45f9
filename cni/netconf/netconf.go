// Package netconf is hepto-cni's network configuration: what the daemon
// writes and the plugin reads. It is its own package so that the daemon
// does not link the plugin.
package netconf

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"
)

// Type is the plugin's type in a network configuration.
const Type = "hepto-cni"

// Versions are the CNI specification versions the plugin speaks.
var Versions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// DefaultMTU fits the overlay: hepto's TUN device has the same MTU.
const DefaultMTU = 1400

// Conf is the plugin's configuration, as found in the conflist.
type Conf struct {
	types.PluginConf
	// MTU of the pod's interface and of its host side.
	MTU int `json:"mtu,omitempty"`
	// StateDir is hepto's state directory: addresses are kept in
	// STATEDIR/cni/NETWORK/, and the daemon's socket tells STATUS it runs.
	StateDir string `json:"stateDir"`
	// PodCIDRs are the node's pod ranges, at most one of each family.
	PodCIDRs []netip.Prefix `json:"podCIDRs"`
}

// ConfList is the network configuration list the daemon writes: hepto-cni,
// then the chained plugins, each a plugin's configuration with its "type".
func ConfList(name string, mtu int, stateDir string, pods []netip.Prefix, chain ...map[string]any) ([]byte, error) {
	v := Versions.SupportedVersions()[len(Versions.SupportedVersions())-1]
	plugin := map[string]any{"type": Type, "mtu": mtu, "stateDir": stateDir, "podCIDRs": pods}
	// Checked as the plugin will see it.
	seen := maps.Clone(plugin)
	seen["cniVersion"], seen["name"] = v, name
	b, err := json.Marshal(seen)
	if err != nil {
		return nil, err
	}
	if _, err := Parse(b); err != nil {
		return nil, fmt.Errorf("conflist: %w", err)
	}
	plugins := []any{plugin}
	for _, c := range chain {
		if t, _ := c["type"].(string); t == "" {
			return nil, fmt.Errorf("conflist: a chained plugin has no type")
		}
		plugins = append(plugins, c)
	}
	b, err = json.MarshalIndent(map[string]any{"cniVersion": v, "name": name, "plugins": plugins}, "", "  ")
	return append(b, '\n'), err
}

// ParseConf decodes and checks a configuration. Its errors are CNI errors:
// 6 when the JSON does not decode, 1 for a version the plugin does not
// speak, 7 for a configuration that decodes but cannot be used.
func Parse(b []byte) (*Conf, error) {
	var c Conf
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot decode network configuration", err.Error())
	}
	if !supported(c.CNIVersion) {
		return nil, types.NewError(types.ErrIncompatibleCNIVersion, "incompatible CNI version",
			fmt.Sprintf("config is %q, plugin supports %v", c.CNIVersion, Versions.SupportedVersions()))
	}
	invalid := func(format string, a ...any) error {
		return types.NewError(types.ErrInvalidNetworkConfig, "invalid network configuration", fmt.Sprintf(format, a...))
	}
	if err := utils.ValidateNetworkName(c.Name); err != nil {
		return nil, err // also keeps the name fit for a directory
	}
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		return nil, invalid("stateDir %q: want an absolute path", c.StateDir)
	}
	if len(c.PodCIDRs) == 0 || len(c.PodCIDRs) > 2 {
		return nil, invalid("podCIDRs %v: want one or two ranges", c.PodCIDRs)
	}
	var fam [2]bool
	for _, p := range c.PodCIDRs {
		if !p.IsValid() || p != p.Masked() || p.Addr().Zone() != "" {
			return nil, invalid("podCIDRs: %v is not a network prefix", p)
		}
		i, max := 0, 30
		if p.Addr().Is6() {
			i, max = 1, 126
		}
		if fam[i] {
			return nil, invalid("podCIDRs %v: two ranges of one family", c.PodCIDRs)
		}
		fam[i] = true
		if p.Bits() > max {
			return nil, invalid("podCIDRs: %v is too small", p)
		}
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	minMTU := 576
	if fam[1] {
		minMTU = 1280 // IPv6 needs that much
	}
	if c.MTU < minMTU || c.MTU > 65535 {
		return nil, invalid("mtu %d: want %d to 65535", c.MTU, minMTU)
	}
	if c.RawPrevResult != nil {
		if err := version.ParsePrevResult(&c.PluginConf); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "cannot decode prevResult", err.Error())
		}
	}
	return &c, nil
}

func supported(v string) bool {
	for _, s := range Versions.SupportedVersions() {
		if s == v {
			return true
		}
	}
	return false
}

// IPAMDir is where the network's addresses are kept.
func (c *Conf) IPAMDir() string { return filepath.Join(c.StateDir, "cni", c.Name) }

// Socket is the daemon's local command socket.
func (c *Conf) Socket() string { return filepath.Join(c.StateDir, "hepto.sock") }

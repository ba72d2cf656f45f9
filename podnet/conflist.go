package podnet

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/hepto-net/hepto/cni/netconf"
	"github.com/hepto-net/hepto/state"
)

// DefaultCNIConfDir is where container runtimes look for network
// configurations.
const DefaultCNIConfDir = "/etc/cni/net.d"

// CNIConfFile is the network configuration the daemon writes; runtimes take
// the first file of the directory in name order.
const CNIConfFile = "10-hepto.conflist"

// CNINetwork is the network's name in the configuration.
const CNINetwork = "hepto"

// writeConfList writes the CNI configuration, unless it is there already:
// runtimes watch the directory.
func writeConfList(dir, stateDir string, mtu int, pods []netip.Prefix) error {
	b, err := netconf.ConfList(CNINetwork, mtu, stateDir, pods)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, CNIConfFile)
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cni configuration: %w", err)
	}
	// Written beside and renamed: a runtime never reads half of it.
	return state.Dir(dir).WriteBytes(CNIConfFile, b, 0o644)
}

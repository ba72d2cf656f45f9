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

// ConfDir is a directory the CNI configuration goes to, with the plugins
// chained after hepto-cni there (their binaries must be where that
// directory's runtime looks).
type ConfDir struct {
	Dir   string
	Chain []map[string]any
}

// writeConfList writes the CNI configuration, unless it is there already:
// runtimes watch the directory.
func writeConfList(d ConfDir, stateDir string, mtu int, pods []netip.Prefix) error {
	dir := d.Dir
	b, err := netconf.ConfList(CNINetwork, mtu, stateDir, pods, d.Chain...)
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

package podnet

import (
	"testing"

	"github.com/hepto-net/hepto/cni/netconf"
	"github.com/hepto-net/hepto/tunnel"
)

// The plugin's default MTU is the tunnel's: a conflist without "mtu" must
// still fit the overlay.
func TestMTUAgrees(t *testing.T) {
	if netconf.DefaultMTU != tunnel.DefaultMTU {
		t.Fatalf("netconf.DefaultMTU %d, tunnel.DefaultMTU %d", netconf.DefaultMTU, tunnel.DefaultMTU)
	}
}

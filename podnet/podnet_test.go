package podnet

import (
	"testing"

	"github.com/hepto-net/hepto/cni"
	"github.com/hepto-net/hepto/tunnel"
)

// The plugin's default MTU is the tunnel's: a conflist without "mtu" must
// still fit the overlay.
func TestMTUAgrees(t *testing.T) {
	if cni.DefaultMTU != tunnel.DefaultMTU {
		t.Fatalf("cni.DefaultMTU %d, tunnel.DefaultMTU %d", cni.DefaultMTU, tunnel.DefaultMTU)
	}
}

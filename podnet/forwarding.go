package podnet

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// enableForwarding lets an anchor relay packets between nodes that have no
// direct path: they come in on the TUN device and go back out of it.
// IPv6 forwarding turns off router advertisements on interfaces that
// accept them only when not forwarding (accept_ra=1); those are moved to
// accept_ra=2 first so that a VPS keeps its SLAAC address.
func enableForwarding() error {
	ras, _ := filepath.Glob("/proc/sys/net/ipv6/conf/*/accept_ra")
	for _, p := range ras {
		if strings.Contains(p, "/all/") || strings.Contains(p, "/default/") {
			continue
		}
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == "1" {
			os.WriteFile(p, []byte("2"), 0o644)
		}
	}
	for _, p := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("enable forwarding (%s): %w", p, err)
		}
	}
	return nil
}

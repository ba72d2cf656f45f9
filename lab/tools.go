package lab

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// tools are the commands the lab runs, with the Debian package that ships each.
var tools = []struct{ cmd, pkg string }{
	{"ip", "iproute2"},
	{"tc", "iproute2"},
	{"iptables", "iptables"},
	{"ip6tables", "iptables"},
	{"conntrack", "conntrack"},
}

// CheckTools reports every command the lab needs that is not installed, naming
// the Debian packages to install.
func CheckTools() error {
	var missing, pkgs []string
	seen := map[string]bool{}
	for _, t := range tools {
		if _, err := exec.LookPath(t.cmd); err != nil {
			missing = append(missing, t.cmd)
			if !seen[t.pkg] {
				seen[t.pkg] = true
				pkgs = append(pkgs, t.pkg)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("lab: missing commands %s: apt-get install -y %s: %w",
		strings.Join(missing, ", "), strings.Join(pkgs, " "), ErrMissingTools)
}

// ErrMissingTools is wrapped by CheckTools's error, so callers can skip.
var ErrMissingTools = errors.New("missing tools")

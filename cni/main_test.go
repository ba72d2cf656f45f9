package cni

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hepto-net/hepto/cni/netconf"
)

// pluginBin is the plugin under test: $HEPTO_CNI_BIN, or one built for the
// run (root only: the tests that run it need root).
var pluginBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	pluginBin = os.Getenv("HEPTO_CNI_BIN")
	if pluginBin == "" && os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "hepto-cni-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		pluginBin = filepath.Join(dir, netconf.Type)
		build := exec.Command("go", "build", "-o", pluginBin, "../cmd/hepto-cni")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build hepto-cni:", err)
			return 1
		}
	}
	return m.Run()
}

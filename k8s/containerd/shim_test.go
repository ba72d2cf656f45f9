package containerd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestShimGroup(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, err := shimGroup(write("a", "shim v1"))
	if err != nil {
		t.Fatal(err)
	}
	same, _ := shimGroup(write("b", "shim v1"))
	other, _ := shimGroup(write("c", "shim v2"))
	if a != same || !strings.HasPrefix(a, "hepto-") {
		t.Errorf("same binary: groups %q and %q, want one hepto- group", a, same)
	}
	if a == other {
		t.Errorf("another binary has the same group %q: an upgrade would keep the old shim", a)
	}
	if _, err := shimGroup(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing shim gave a group")
	}
}

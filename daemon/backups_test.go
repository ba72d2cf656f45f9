package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hepto-net/hepto/membership"
)

func TestCopyTargets(t *testing.T) {
	m := membership.Membership{Nodes: []membership.Node{
		{Name: "vps", Index: 1, Roles: []string{membership.RoleAnchor, membership.RoleControlPlane}},
		{Name: "pi", Index: 2},
		{Name: "laptop", Index: 3},
		{Name: "vps2", Index: 130, Roles: []string{membership.RoleAnchor}},
	}}
	var got []string
	for _, n := range copyTargets(m, "vps") {
		got = append(got, n.Name)
	}
	if len(got) != 3 || got[0] != "vps2" || got[1] != "pi" || got[2] != "laptop" {
		t.Fatalf("targets %v, want the other anchor first, then by index", got)
	}
}

func TestPruneBackups(t *testing.T) {
	dir := t.TempDir()
	names := []string{"20261201T000000Z", "20261202T000000Z", "20261203T000000Z", "20261204T000000Z", "20261205T000000Z", "20261206T000000Z"}
	for _, n := range names {
		os.WriteFile(filepath.Join(dir, n+".hepto-backup"), nil, 0o600)
	}
	os.WriteFile(filepath.Join(dir, "from-vps.hepto-backup"), nil, 0o600)
	pruneBackups(dir, 4)
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 5 {
		t.Fatalf("left %v", left)
	}
	for _, gone := range names[:2] {
		if _, err := os.Stat(filepath.Join(dir, gone+".hepto-backup")); err == nil {
			t.Fatalf("%s kept", gone)
		}
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A join file gives its token, trimmed, only when no other user may read
// it; an empty or missing file is a clear error.
func TestReadJoinFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := readJoinFile(write("ok", "hepto1.abc\n", 0o600)); err != nil || tok != "hepto1.abc" {
		t.Errorf("0600 file: %q, %v", tok, err)
	}
	for _, c := range []struct {
		name, path, want string
	}{
		{"world-readable", write("open", "hepto1.abc\n", 0o644), "chmod 600"},
		{"group-readable", write("group", "hepto1.abc\n", 0o640), "chmod 600"},
		{"empty", write("empty", " \n", 0o600), "empty"},
		{"missing", filepath.Join(dir, "none"), "no such file"},
	} {
		if _, err := readJoinFile(c.path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}

package e2eimages

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The machine's apt sources become deb-src ones: one-line entries and
// deb822 files alike; a machine without any is a clear error.
func TestDebSources(t *testing.T) {
	etc, dir := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(etc, "sources.list.d"), 0o755)
	os.MkdirAll(filepath.Join(dir, "sources.list.d"), 0o755)
	if err := debSources(etc, dir); err == nil {
		t.Error("no sources: no error")
	}
	os.WriteFile(filepath.Join(etc, "sources.list"), []byte("# comment\ndeb http://deb.example/debian bookworm main\ndeb-src http://x/ y z\n"), 0o644)
	os.WriteFile(filepath.Join(etc, "sources.list.d", "debian.sources"),
		[]byte("Types: deb\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"), 0o644)
	if err := debSources(etc, dir); err != nil {
		t.Fatal(err)
	}
	list, _ := os.ReadFile(filepath.Join(dir, "sources.list"))
	if string(list) != "deb-src http://deb.example/debian bookworm main\n" {
		t.Errorf("sources.list: %q", list)
	}
	d822, _ := os.ReadFile(filepath.Join(dir, "sources.list.d", "debian.sources"))
	if !strings.HasPrefix(string(d822), "Types: deb-src\nURIs: http://deb.example/debian\n") {
		t.Errorf("debian.sources: %q", d822)
	}
}

func TestDSCVersion(t *testing.T) {
	out := "'http://deb.example/debian/pool/main/b/busybox/busybox_1.35.0-4%2bdeb12u1.dsc' busybox_1.35.0-4+deb12u1.dsc 2250 SHA256:00\n" +
		"'http://deb.example/debian/pool/main/b/busybox/busybox_1.35.0.orig.tar.bz2' busybox_1.35.0.orig.tar.bz2 2485 SHA256:11\n"
	if v, err := dscVersion(out); err != nil || v != "1.35.0-4+deb12u1" {
		t.Errorf("version %q, %v", v, err)
	}
	if _, err := dscVersion("E: Unable to find a source package for busybox"); err == nil {
		t.Error("no .dsc: no error")
	}
}

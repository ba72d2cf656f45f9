package localvolume

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestVolumes(t *testing.T) {
	d := Dir(filepath.Join(t.TempDir(), "volumes"))
	p, err := d.Create("pvc-1")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o777 || !fi.IsDir() {
		t.Fatalf("volume directory: %v %v", fi, err)
	}
	if err := os.WriteFile(filepath.Join(p, "data"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Created again (a retry): the data stays.
	if _, err := d.Create("pvc-1"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(p, "data")); string(b) != "kept" {
		t.Fatalf("data after a second create: %q", b)
	}
	avail, capacity, err := d.Space()
	if err != nil || avail <= 0 || capacity < avail {
		t.Fatalf("space %d of %d: %v", avail, capacity, err)
	}
	if err := d.Delete("pvc-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("volume still there: %v", err)
	}
	if err := d.Delete("pvc-1"); err != nil {
		t.Errorf("deleting a deleted volume: %v", err)
	}
	for _, bad := range []string{"", "..", ".", "a/b", "../x", "A", "-a", "a b", string(make([]byte, 300))} {
		if _, err := d.Create(bad); !errors.Is(err, ErrName) {
			t.Errorf("Create(%q): %v, want ErrName", bad, err)
		}
		if err := d.Delete(bad); !errors.Is(err, ErrName) {
			t.Errorf("Delete(%q): %v, want ErrName", bad, err)
		}
	}
}

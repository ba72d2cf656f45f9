package kubebin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func zstdOf(t *testing.T, content []byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	zw, err := zstd.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(content)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	return b.Bytes(), hex.EncodeToString(sum[:])
}

func TestUnpack(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	content := []byte("#!/bin/sh\necho full\n")
	z, sum := zstdOf(t, content)
	old := filepath.Join(dir, "0123456789abcdef")
	other := filepath.Join(dir, "keep-me")
	for _, d := range []string{old, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path, err := Unpack(dir, bytes.NewReader(z), sum)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, sum[:16], Name); path != want {
		t.Errorf("path %s, want %s", path, want)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("unpacked %q, %v", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want 0755", fi.Mode().Perm())
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the other version's directory is still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a directory that is no version was removed: %v", err)
	}
	// Unpacked already: the source is not read again.
	if again, err := Unpack(dir, strings.NewReader("not zstd"), sum); err != nil || again != path {
		t.Errorf("second unpack: %s, %v", again, err)
	}
}

func TestUnpackRefuses(t *testing.T) {
	z, sum := zstdOf(t, []byte("the real bytes"))
	wrong, _ := zstdOf(t, []byte("other bytes"))
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := Unpack(dir, bytes.NewReader(wrong), sum); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("bytes that do not match: %v", err)
	}
	if _, err := Unpack(dir, bytes.NewReader(z[:len(z)/2]), sum); err == nil {
		t.Error("truncated: no error")
	}
	if _, err := Unpack(dir, bytes.NewReader(z), "abc"); err == nil {
		t.Error("short checksum: no error")
	}
	entries, _ := os.ReadDir(filepath.Join(dir, sum[:16]))
	if len(entries) != 0 {
		t.Errorf("failed unpacks left %d files behind", len(entries))
	}
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777) // past the umask
	if _, err := Unpack(open, bytes.NewReader(z), sum); err == nil || !strings.Contains(err.Error(), "writable by others") {
		t.Errorf("a directory anyone can write to: %v", err)
	}
}

func TestOrigin(t *testing.T) {
	t.Setenv(EnvOrigin, "/usr/local/lib/hepto/hepto")
	if p, err := Origin(); err != nil || p != "/usr/local/lib/hepto/hepto" {
		t.Errorf("Origin() = %s, %v", p, err)
	}
	t.Setenv(EnvDir, "/somewhere")
	if d, err := Dir(); err != nil || d != "/somewhere" {
		t.Errorf("Dir() = %s, %v", d, err)
	}
}

// TestUnpackAtOnce: processes starting together unpack once, in turn.
func TestUnpackAtOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	content := bytes.Repeat([]byte("hepto"), 1<<16)
	z, sum := zstdOf(t, content)
	paths := make(chan string, 8)
	for range 8 {
		go func() {
			p, err := Unpack(dir, bytes.NewReader(z), sum)
			if err != nil {
				t.Error(err)
			}
			paths <- p
		}()
	}
	first := <-paths
	for range 7 {
		if p := <-paths; p != first {
			t.Errorf("path %s, want %s", p, first)
		}
	}
	if got, err := os.ReadFile(first); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("unpacked %d bytes, %v", len(got), err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, sum[:16], ".*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

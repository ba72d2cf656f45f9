// Command pack compresses the full build of hepto for the fabric build to
// carry (package kubebin): pack EXECUTABLE DIR writes DIR/hepto.zst and
// DIR/hepto.sha256.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: pack EXECUTABLE DIR")
		os.Exit(2)
	}
	if err := pack(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "pack:", err)
		os.Exit(1)
	}
}

func pack(exe, dir string) error {
	in, err := os.Open(exe)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, ".hepto.zst-*")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	zw, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(zw, io.TeeReader(in, h)); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := os.WriteFile(filepath.Join(dir, "hepto.sha256"), []byte(sum+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Chmod(out.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(out.Name(), filepath.Join(dir, "hepto.zst"))
}

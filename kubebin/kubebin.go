// Package kubebin carries the executable that runs Kubernetes inside the
// one that does not, and starts it.
//
// Go runs the initialisers of every package linked, whatever the command:
// with Kubernetes linked, `hepto status` and a fabric-only node paid for
// some 1,200 of them (0.2 s, and 90 MB of the executable's pages touched).
// So hepto is built twice from the same code: the full build, and the
// fabric build (-tags fabric) that carries the full one compressed. The
// fabric build runs the fabric and the commands itself; where Kubernetes
// is wanted, it unpacks the full one once per version under Dir (as k3s
// unpacks its data) and executes it in its place: same process, same
// arguments. One file is installed; the full build alone works as well.
package kubebin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"syscall"

	"github.com/klauspost/compress/zstd"
)

const (
	// EnvDir names the directory executables are unpacked in.
	EnvDir = "HEPTO_DATA_DIR"
	// EnvOrigin is set to the fabric build's path in the full one it
	// starts, which looks for its companions (containerd) beside it.
	EnvOrigin = "HEPTO_ORIGIN"
	// Name is the unpacked executable's name.
	Name = "hepto"
)

// Dir is where executables are unpacked: $HEPTO_DATA_DIR, else
// /var/lib/hepto/data for root, else the user's cache directory.
func Dir() (string, error) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, nil
	}
	if os.Geteuid() == 0 {
		return "/var/lib/hepto/data", nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no directory to unpack Kubernetes' executable in (set %s): %w", EnvDir, err)
	}
	return filepath.Join(c, "hepto"), nil
}

// Origin is the executable the person ran: the fabric build's when it
// started this one, else this one.
func Origin() (string, error) {
	if p := os.Getenv(EnvOrigin); p != "" {
		return p, nil
	}
	return os.Executable()
}

// A version's directory: the first 16 hex digits of its SHA-256.
var versionDir = regexp.MustCompile(`^[0-9a-f]{16}$`)

// Unpack writes the executable whose zstd-compressed bytes src holds, and
// whose SHA-256 is sum (hex), to dir/SUM/hepto, unless it is there
// already, and removes other versions. It returns the executable's path.
// Processes unpacking at once take turns (a lock file in dir).
// Bytes that do not match sum are an error and leave nothing behind.
func Unpack(dir string, src io.Reader, sum string) (string, error) {
	if len(sum) != 64 {
		return "", fmt.Errorf("checksum %q: want 64 hex digits", sum)
	}
	if err := safeDir(dir); err != nil {
		return "", err
	}
	vdir := filepath.Join(dir, sum[:16])
	path := filepath.Join(vdir, Name)
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		return path, nil
	}
	// One process unpacks; the others starting at once wait for it.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("%s: %w", lock.Name(), err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		return path, nil
	}
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(vdir, "."+Name+"-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing
	if err := decompress(tmp, src, sum); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	removeOthers(dir, sum[:16])
	return path, nil
}

func decompress(dst io.Writer, src io.Reader, sum string) error {
	zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return err
	}
	defer zr.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(dst, h), zr); err != nil {
		return fmt.Errorf("unpacking Kubernetes' executable: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("unpacking Kubernetes' executable: checksum %s, want %s", got, sum)
	}
	return nil
}

// safeDir makes dir if needed, and refuses one that someone else could
// write to: what is unpacked there is then run as root.
func safeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by others (mode %v): executables are not unpacked there", dir, fi.Mode().Perm())
	case ok && int(st.Uid) != os.Geteuid() && st.Uid != 0:
		return fmt.Errorf("%s belongs to user %d: executables are not unpacked there", dir, st.Uid)
	}
	return nil
}

// removeOthers removes the other versions' directories; a process running
// one of them keeps its executable (its inode lives on).
func removeOthers(dir, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() != keep && versionDir.MatchString(e.Name()) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// ErrNotEmbedded is Exec's error in a build that carries no full one.
var ErrNotEmbedded = errors.New("this executable carries no Kubernetes executable")

// Package localvolume keeps a node's local persistent volumes: one
// directory each, under one root (STATE/volumes, or the path the node is
// given). A volume takes the disk space it is written, as a hostPath
// would; its size is what the scheduler checks against the disk's free
// space (capacity tracking), not a quota.
package localvolume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"golang.org/x/sys/unix"
)

// Dir is the root of a node's local volumes.
type Dir string

// ErrName is the error for a volume name that is not one.
var ErrName = errors.New("invalid volume name: want a Kubernetes object name (lower-case letters, digits, '-' and '.')")

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// Path is where volume name lives.
func (d Dir) Path(name string) (string, error) {
	if !nameRE.MatchString(name) || name == "." || name == ".." {
		return "", fmt.Errorf("%w: %q", ErrName, name)
	}
	return filepath.Join(string(d), name), nil
}

// Create makes volume name's directory, if it is not there, writable by
// any user: a pod may run as any. It returns its path.
func (d Dir) Create(name string) (string, error) {
	p, err := d.Path(name)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(string(d), 0o711); err != nil {
		return "", fmt.Errorf("local volumes: %w", err)
	}
	if err := os.Mkdir(p, 0o777); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("local volume %s: %w", name, err)
	}
	// The umask took bits away.
	if err := os.Chmod(p, 0o777); err != nil {
		return "", fmt.Errorf("local volume %s: %w", name, err)
	}
	return p, nil
}

// Delete removes volume name and its data; a volume already gone is no
// error.
func (d Dir) Delete(name string) error {
	p, err := d.Path(name)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("local volume %s: %w", name, err)
	}
	return nil
}

// Space is the disk's space for volumes: what an unprivileged writer may
// still use, and the file system's size, in bytes.
func (d Dir) Space() (available, capacity int64, err error) {
	if err := os.MkdirAll(string(d), 0o711); err != nil {
		return 0, 0, fmt.Errorf("local volumes: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(string(d), &st); err != nil {
		return 0, 0, fmt.Errorf("local volumes: %w", err)
	}
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize, nil
}

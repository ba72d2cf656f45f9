// Package state keeps a node's files in its state directory. Every write is
// atomic (temporary file, fsync, rename, fsync of the directory), so a crash
// or a power cut leaves either the old file or the new one, never half of one.
package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files of the state directory.
const (
	ClusterFile    = "cluster.json"    // cluster name, public key, address plan
	ClusterKeyFile = "cluster.key"     // cluster signing key: anchors only
	NodeKeyFile    = "node.key"        // this node's WireGuard private key
	NodeFile       = "node.json"       // this node's signed record
	MembersFile    = "membership.json" // last signed membership seen
	AnchorFile     = "anchor.json"     // join tokens issued by this anchor
	PathsFile      = "paths.json"      // UDP port, direct paths' endpoints
	BackupKeyFile  = "backup.key"      // control-plane anchors: the key that seals backups
	RestoredFile   = "restored"        // made by hepto restore, until the anchor hears from the cluster
	SocketFile     = "hepto.sock"      // local command socket
	KubernetesDir  = "kubernetes"      // Kubernetes' own state (certificates, etcd, kubelet)
)

// ErrNotExist is returned by Read for a file that is not there.
var ErrNotExist = fs.ErrNotExist

// Dir is a state directory.
type Dir string

// Path is the full path of a file of the directory.
func (d Dir) Path(name string) string { return filepath.Join(string(d), name) }

// Has reports whether the file exists.
func (d Dir) Has(name string) bool {
	_, err := os.Stat(d.Path(name))
	return err == nil
}

// Ensure creates the directory, private to its owner.
func (d Dir) Ensure() error {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	return nil
}

// Read decodes a JSON file. A file that does not decode is reported as
// corrupt and left as it is, for its owner to look at.
func (d Dir) Read(name string, v any) error {
	b, err := os.ReadFile(d.Path(name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w", d.Path(name), ErrNotExist)
		}
		return fmt.Errorf("read %s: %w", d.Path(name), err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s is corrupt: %w", d.Path(name), err)
	}
	return nil
}

// Write encodes v as JSON and replaces the file atomically.
func (d Dir) Write(name string, v any, perm fs.FileMode) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return d.WriteBytes(name, append(b, '\n'), perm)
}

// WriteBytes replaces the file atomically.
func (d Dir) WriteBytes(name string, b []byte, perm fs.FileMode) error {
	if err := d.Ensure(); err != nil {
		return err
	}
	if err := writeTemp(string(d), name, b, perm); err != nil {
		return fmt.Errorf("write %s: %w", d.Path(name), err)
	}
	// The rename is durable only once the directory itself is synced.
	if dir, err := os.Open(string(d)); err == nil {
		dir.Sync()
		dir.Close()
	}
	return nil
}

func writeTemp(dir, name string, b []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(b)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// ID is a short name of the directory that stays the same across runs:
// what tells apart machine-wide things (cgroups) of several nodes on one
// machine.
func (d Dir) ID() string {
	abs, err := filepath.Abs(string(d))
	if err != nil {
		abs = string(d)
	}
	sum := sha256.Sum256([]byte(abs))
	return hex.EncodeToString(sum[:4])
}

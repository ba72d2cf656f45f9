package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hepto-net/hepto/backup"
	"github.com/hepto-net/hepto/state"
)

// What a backup holds: the state files a control-plane anchor needs to
// be itself again (its WireGuard key, so that the other nodes know it
// without a token), the Kubernetes CAs, and an etcd snapshot.
var backupStateFiles = []string{
	state.ClusterFile, state.ClusterKeyFile, state.NodeKeyFile, state.NodeFile,
	state.MembersFile, state.AnchorFile,
}

const (
	backupStatePrefix = "state/"
	backupPKIPrefix   = "kubernetes/pki/"
	backupEtcdFile    = "etcd.db"
)

// backupKey reads STATE/backup.key, or makes it.
func backupKey(st state.Dir) (backup.Key, error) {
	b, err := os.ReadFile(st.Path(state.BackupKeyFile))
	if err == nil {
		k, err := backup.ParseKey(string(b))
		if err != nil {
			return k, fmt.Errorf("%s: %w", st.Path(state.BackupKeyFile), err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return backup.Key{}, err
	}
	k, err := backup.NewKey()
	if err != nil {
		return k, err
	}
	return k, st.WriteBytes(state.BackupKeyFile, []byte(k.String()+"\n"), 0o600)
}

// takeBackup seals a backup of this control-plane node to path.
func takeBackup(ctx context.Context, st state.Dir, kube *kubeNode, path string) (int, error) {
	var snap bytes.Buffer
	if err := kube.Snapshot(ctx, &snap); err != nil {
		return 0, err
	}
	files := []backup.File{{Name: backupEtcdFile, Mode: 0o600, Data: snap.Bytes()}}
	for _, name := range backupStateFiles {
		b, err := os.ReadFile(st.Path(name))
		if errors.Is(err, fs.ErrNotExist) && name == state.AnchorFile {
			continue
		}
		if err != nil {
			return 0, err
		}
		files = append(files, backup.File{Name: backupStatePrefix + name, Mode: 0o600, Data: b})
	}
	pkiDir := filepath.Join(st.Path(state.KubernetesDir), "pki")
	entries, err := os.ReadDir(pkiDir)
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(pkiDir, e.Name()))
		if err != nil {
			return 0, err
		}
		files = append(files, backup.File{Name: backupPKIPrefix + e.Name(), Mode: 0o600, Data: b})
	}
	k, err := backupKey(st)
	if err != nil {
		return 0, err
	}
	var out bytes.Buffer
	if err := backup.Seal(&out, k, files); err != nil {
		return 0, err
	}
	dir, base := filepath.Split(path)
	if err := state.Dir(dir).WriteBytes(base, out.Bytes(), 0o600); err != nil {
		return 0, err
	}
	return out.Len(), nil
}

// Restore makes a state directory from a backup, before `hepto run`: the
// node comes back with its key, addresses and roles, the cluster with
// its membership, token book, CAs and etcd's content. dir must hold no
// node. On failure, what was written is removed.
func Restore(dir, keyText, file string) (err error) {
	st := state.Dir(dir)
	if st.Has(state.NodeFile) || st.Has(state.ClusterFile) {
		return fmt.Errorf("%s already holds a node: restore into an empty state directory", dir)
	}
	k, err := backup.ParseKey(keyText)
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	files, err := backup.Open(f, k)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if err := st.Ensure(); err != nil {
		return err
	}
	var written []string
	defer func() {
		if err != nil {
			for _, p := range written {
				os.RemoveAll(p)
			}
		}
	}()
	var snap []byte
	for _, fl := range files {
		switch {
		case fl.Name == backupEtcdFile:
			snap = fl.Data
		case strings.HasPrefix(fl.Name, backupStatePrefix) && !strings.Contains(strings.TrimPrefix(fl.Name, backupStatePrefix), "/"):
			name := strings.TrimPrefix(fl.Name, backupStatePrefix)
			if err := st.WriteBytes(name, fl.Data, 0o600); err != nil {
				return err
			}
			written = append(written, st.Path(name))
		case strings.HasPrefix(fl.Name, backupPKIPrefix) && !strings.Contains(strings.TrimPrefix(fl.Name, backupPKIPrefix), "/"):
			pki := state.Dir(filepath.Join(st.Path(state.KubernetesDir), "pki"))
			if err := os.MkdirAll(string(pki), 0o700); err != nil {
				return err
			}
			written = append(written, st.Path(state.KubernetesDir))
			if err := pki.WriteBytes(strings.TrimPrefix(fl.Name, backupPKIPrefix), fl.Data, 0o600); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected file %q in the backup", file, fl.Name)
		}
	}
	n, err := load(st)
	if err != nil {
		return fmt.Errorf("%s: the backup's state does not load: %w", file, err)
	}
	if n.signer == nil || !n.self.IsControlPlane() {
		return fmt.Errorf("%s: not a backup of a control-plane anchor", file)
	}
	if snap == nil {
		return fmt.Errorf("%s: no etcd snapshot in the backup", file)
	}
	tmp, err := os.CreateTemp(dir, "etcd-snapshot-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(snap); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	written = append(written, st.Path(state.KubernetesDir))
	if err := restoreEtcd(tmp.Name(), st.Path(state.KubernetesDir), n.self.Name); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	if err := st.WriteBytes(state.BackupKeyFile, []byte(k.String()+"\n"), 0o600); err != nil {
		return err
	}
	written = append(written, st.Path(state.BackupKeyFile))
	return st.WriteBytes(state.RestoredFile, []byte("restored from a backup: this anchor admits nodes once it has compared its membership with another node's\n"), 0o600)
}

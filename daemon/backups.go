package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/membership"
	"github.com/hepto-net/hepto/state"
)

// Scheduled backups: a control-plane anchor takes one every
// Config.BackupInterval into STATE/backups, keeps the last
// backupsKept, and sends each to backupCopies other nodes (anchors first,
// then the lowest indexes), which keep the latest from each sender in
// their STATE/backups. They cannot open them: the key stays on the
// anchor (and with its administrator). So losing any one machine's disk
// loses no backup.
const (
	DefaultBackupInterval = 6 * time.Hour
	backupsKept           = 4
	backupCopies          = 2
	backupsDir            = "backups"
	// maxBackupCopy bounds a copy another node sends us.
	maxBackupCopy = 512 << 20
)

type backupService struct {
	st       state.Dir
	kube     *kubeNode
	store    *membership.Store
	self     string
	client   *control.Client
	interval time.Duration
	log      *slog.Logger
}

func (b *backupService) Name() string { return "backups" }

func (b *backupService) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(b.interval):
		}
		if err := b.once(ctx); err != nil {
			b.log.Warn("scheduled backup", "err", err)
		}
	}
}

func (b *backupService) once(ctx context.Context) error {
	dir := b.st.Path(backupsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(dir, time.Now().UTC().Format("20060102T150405Z")+".hepto-backup")
	if _, err := takeBackup(ctx, b.st, b.kube, path); err != nil {
		return err
	}
	pruneBackups(dir, backupsKept)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sent := 0
	for _, n := range copyTargets(b.store.Current(), b.self) {
		if sent == backupCopies {
			break
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := b.client.PostBytes(cctx, n.OverlayIPs[0], control.PathBackups, data)
		cancel()
		if err != nil {
			b.log.Debug("backup copy", "node", n.Name, "err", err)
			continue
		}
		sent++
	}
	b.log.Info("scheduled backup", "file", path, "bytes", len(data), "copies", sent)
	if sent == 0 {
		return fmt.Errorf("%s: no other node took a copy", path)
	}
	return nil
}

// copyTargets are the nodes to give copies to: other anchors first, then
// the others, by index.
func copyTargets(m membership.Membership, self string) []membership.Node {
	out := slices.DeleteFunc(slices.Clone(m.Nodes), func(n membership.Node) bool { return n.Name == self })
	slices.SortStableFunc(out, func(a, b membership.Node) int {
		if a.IsAnchor() != b.IsAnchor() {
			if a.IsAnchor() {
				return -1
			}
			return 1
		}
		return a.Index - b.Index
	})
	return out
}

// pruneBackups keeps the newest keep backups of dir (names sort by time).
func pruneBackups(dir string, keep int) {
	entries, _ := filepath.Glob(filepath.Join(dir, "2*.hepto-backup"))
	sort.Strings(entries)
	for len(entries) > keep {
		os.Remove(entries[0])
		entries = entries[1:]
	}
}

// handleBackupCopy keeps a copy of a control-plane node's backup, the
// latest from each.
func handleBackupCopy(st state.Dir) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sender, ok := control.Caller(r)
		if !ok || !sender.IsControlPlane() {
			control.WriteError(w, control.Refused("backups come from control-plane nodes only"))
			return
		}
		data, err := io.ReadAll(io.LimitReader(r.Body, maxBackupCopy+1))
		if err != nil || len(data) > maxBackupCopy || !bytes.HasPrefix(data, []byte("hepto-backup/")) {
			control.WriteError(w, control.BadRequest(fmt.Errorf("not a backup, or larger than %d bytes", maxBackupCopy)))
			return
		}
		dir := state.Dir(st.Path(backupsDir))
		if err := os.MkdirAll(string(dir), 0o700); err != nil {
			control.WriteError(w, control.Unavailable(err))
			return
		}
		if err := dir.WriteBytes("from-"+strings.ReplaceAll(sender.Name, "/", "")+".hepto-backup", data, 0o600); err != nil {
			control.WriteError(w, control.Unavailable(err))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

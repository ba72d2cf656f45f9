package k8s

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/hepto-net/hepto/k8s/images"
	"github.com/hepto-net/hepto/state"
)

// importedFile records the archives of STATE/images already imported
// (name → size and modification time), so that a restart does not import
// them again.
const importedFile = "images-imported.json"

// runImages imports the built-in pause image, then the archives in
// STATE/images, and is done.
func (n *Node) runImages(ctx context.Context) error {
	if err := n.ctrd.Ready(ctx); err != nil {
		return nil
	}
	if err := n.importPause(ctx); err != nil {
		return fmt.Errorf("pause image: %w", err)
	}
	n.imagesReady.Open()
	entries, err := os.ReadDir(n.layout.Images)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	st := state.Dir(n.layout.Root)
	done := map[string]string{}
	if st.Has(importedFile) {
		if err := st.Read(importedFile, &done); err != nil {
			n.log.Warn("image archives: the record of imports is unreadable; importing all again", "err", err)
			done = map[string]string{}
		}
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".tar") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		stamp := fmt.Sprintf("%d:%d", fi.Size(), fi.ModTime().UnixNano())
		if done[e.Name()] == stamp {
			continue
		}
		path := filepath.Join(n.layout.Images, e.Name())
		if err := n.ctrd.Import(ctx, path); err != nil {
			// One bad archive does not keep the others out.
			n.log.Error("image archive not imported", "file", path, "err", err)
			continue
		}
		n.log.Info("image archive imported", "file", path)
		done[e.Name()] = stamp
		if err := st.Write(importedFile, done, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// importPause imports the sandbox image built into hepto.
func (n *Node) importPause(ctx context.Context) error {
	f, err := os.CreateTemp(n.layout.Root, "pause-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = images.WriteArchive(f, images.PauseImage(runtime.GOARCH))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return n.ctrd.Import(ctx, f.Name())
}

package k8s

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/hepto-net/hepto/k8s/imageshare"
)

// newImageShare shares this node's images with the other nodes
// (package imageshare), and writes containerd's registry configuration
// with the nodes' mirror first, before containerd starts.
func (n *Node) newImageShare() *imageshare.Share {
	share := imageshare.New(imageshare.Options{
		Self:    imageshare.Peer{Name: n.o.NodeName, Anchor: n.o.Anchor},
		Content: filepath.Join(n.layout.Containerd, "root", "io.containerd.content.v1.content"),
		Peers:   n.imagePeers,
		Client:  n.o.Client,
		Log:     n.log.With("part", "image-sharing"),
	})
	if err := n.writeHosts(); err != nil {
		n.log.Warn("image sharing: registry configuration", "err", err)
	}
	return share
}

func (n *Node) writeHosts() error {
	mirror := fmt.Sprintf("http://127.0.0.1:%d", imageshare.Port)
	if n.o.NoImageSharing {
		mirror = ""
	}
	return imageshare.WriteHosts(n.layout.Registries, n.layout.Hosts, mirror)
}

// imagePeers are the other Kubernetes nodes, this node's home marked.
func (n *Node) imagePeers() []imageshare.Peer {
	members := n.o.Members()
	me, _ := memberNamed(members, n.o.NodeName)
	var out []imageshare.Peer
	for _, m := range members {
		if m.Name == n.o.NodeName || !m.RunsKubernetes() || len(m.OverlayIPs) == 0 {
			continue
		}
		out = append(out, imageshare.Peer{Name: m.Name, Addr: m.OverlayIPs[0], Home: me.Zone != "" && m.Zone == me.Zone, Anchor: m.IsAnchor()})
	}
	return out
}

// runImageShare serves the mirror, and writes containerd's registry
// configuration again when the user's (STATE/registries) changes.
func (n *Node) runImageShare(ctx context.Context) error {
	go n.followRegistries(ctx)
	if n.o.Client == nil || n.o.NoImageSharing {
		<-ctx.Done()
		return nil
	}
	return n.share.Run(ctx)
}

// followRegistries rewrites the configuration on each change of the
// user's directory or of a registry's in it.
func (n *Node) followRegistries(ctx context.Context) {
	if err := os.MkdirAll(n.layout.Registries, 0o755); err != nil {
		n.log.Warn("image sharing: registries directory", "err", err)
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		n.log.Warn("image sharing: registries not followed", "err", err)
		return
	}
	defer w.Close()
	watch := func() {
		w.Add(n.layout.Registries)
		entries, _ := os.ReadDir(n.layout.Registries)
		for _, e := range entries {
			if e.IsDir() {
				w.Add(filepath.Join(n.layout.Registries, e.Name()))
			}
		}
	}
	watch()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.Errors:
		case <-w.Events:
			// A burst (an editor's save, a directory and its file): wait for
			// it to end.
			time.Sleep(100 * time.Millisecond)
			for len(w.Events) > 0 {
				<-w.Events
			}
			watch()
			if err := n.writeHosts(); err != nil {
				n.log.Warn("image sharing: registry configuration", "err", err)
			}
		}
	}
}

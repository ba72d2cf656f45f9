package containerd

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// PinnedLabel is the image label by which containerd's CRI reports an
// image as pinned.
const PinnedLabel = "io.cri-containerd.pinned=pinned"

// Import imports an image archive (`docker save` or OCI archive tar) into
// Kubernetes' namespace, unpacked for the CRI's snapshotter, through
// containerd's own ctr. The images are pinned (the CRI's label): the
// kubelet's image garbage collection, which runs when the disk fills up,
// leaves them alone, for a node without a registry could not pull them
// back.
func (c *Containerd) Import(ctx context.Context, archive string) error {
	if err := c.Ready(ctx); err != nil {
		return err
	}
	ctr, err := Binary("ctr")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, ctr, "--address", c.o.Socket, "--namespace", Namespace,
		"images", "import", "--snapshotter", c.o.Snapshotter, "--label", PinnedLabel, archive)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("import %s: %w: %s", archive, err, strings.TrimSpace(out.String()))
	}
	return nil
}

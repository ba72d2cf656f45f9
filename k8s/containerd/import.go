package containerd

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Import imports an image archive (`docker save` or OCI archive tar) into
// Kubernetes' namespace, unpacked for the CRI's snapshotter, through
// containerd's own ctr.
func (c *Containerd) Import(ctx context.Context, archive string) error {
	if err := c.Ready(ctx); err != nil {
		return err
	}
	ctr, err := Binary("ctr")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, ctr, "--address", c.o.Socket, "--namespace", Namespace,
		"images", "import", "--snapshotter", c.o.Snapshotter, archive)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("import %s: %w: %s", archive, err, strings.TrimSpace(out.String()))
	}
	return nil
}

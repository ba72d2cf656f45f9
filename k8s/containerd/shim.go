package containerd

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// shimGroupEnv names, in containerd's environment, the group whose
// containers share one runc shim. The shim built by `make build` reads it
// (third_party/containerd/patches); upstream's groups a pod's containers.
const shimGroupEnv = "HEPTO_SHIM_GROUP"

// shimGroup is the group of all the node's containers: one shim for the
// node instead of one per pod, each a Go process with about 5 MB of its
// own that wakes up on its own. The shim binary's digest is part of the
// name: after an upgrade, new pods get a shim of the new binary, and the
// old shim ends with its last pod.
func shimGroup(shim string) (string, error) {
	f, err := os.Open(shim)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", shim, err)
	}
	return "hepto-" + hex.EncodeToString(h.Sum(nil)[:8]), nil
}

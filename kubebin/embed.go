//go:build fabric

package kubebin

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// The full build, packed by `go run ./kubebin/pack` (make build).
var (
	//go:embed hepto.zst
	packed []byte
	//go:embed hepto.sha256
	packedSum string
)

// Embedded tells whether this executable carries the full one.
const Embedded = true

// Exec unpacks the full executable if needed and runs it in place of this
// process with args (os.Args: the same command). It returns only on error.
func Exec(args []string) error {
	dir, err := Dir()
	if err != nil {
		return err
	}
	path, err := Unpack(dir, bytes.NewReader(packed), strings.TrimSpace(packedSum))
	if err != nil {
		return err
	}
	env := os.Environ()
	if self, err := Origin(); err == nil {
		env = append(env, EnvOrigin+"="+self)
	}
	err = syscall.Exec(path, args, env)
	if errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("starting %s: %w (a file system mounted noexec? %s names another directory)", path, err, EnvDir)
	}
	return fmt.Errorf("starting %s: %w", path, err)
}

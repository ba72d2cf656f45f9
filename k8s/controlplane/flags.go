package controlplane

import (
	"fmt"
	"io"
	"net"

	"github.com/spf13/pflag"
	cliflag "k8s.io/component-base/cli/flag"
)

// parseFlags sets a component's options from command-line style flags,
// without its cobra command (which would set up signal handling and
// process-wide logging).
func parseFlags(component string, fss cliflag.NamedFlagSets, args []string) error {
	fs := pflag.NewFlagSet(component, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, name := range fss.Order {
		fs.AddFlagSet(fss.FlagSets[name])
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("flags: %w", err)
	}
	return nil
}

// ipv6LoopbackUsable reports whether ::1 can be bound (IPv6 may be off).
func ipv6LoopbackUsable() bool {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

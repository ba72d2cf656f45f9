//go:build fabric

package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/kubebin"
)

// kubectlCmd runs kubectl in the full executable, which links it.
func kubectlCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "kubectl ARGS...",
		Short:              "kubectl with admin credentials (on a control-plane node)",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return kubebin.Exec(os.Args)
		},
	}
}

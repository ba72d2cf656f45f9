// Command hepto is the hepto daemon and the commands that drive it.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Set at build time by the Makefile.
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	root := &cobra.Command{
		Use:           "hepto",
		Short:         "One Kubernetes cluster out of machines at home, behind NAT",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("state", "/var/lib/hepto", "state directory")
	root.AddCommand(initCmd(), tokenCmd(), removeCmd(), backupCmd(), restoreCmd(), runCmd(), statusCmd(), pingCmd(), netcheckCmd(), kubectlCmd(), kubeconfigCmd(), secretsCmd(), imagesCmd(), versionCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "hepto:", err)
		os.Exit(1)
	}
}

func stateDir(cmd *cobra.Command) string {
	s, _ := cmd.Flags().GetString("state")
	return s
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "hepto %s (commit %s)\n", version, commit)
		},
	}
}

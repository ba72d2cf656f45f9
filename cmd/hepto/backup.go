package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/daemon"
	"github.com/hepto-net/hepto/kubebin"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/state"
)

func backupCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write an encrypted backup of the cluster to FILE (on the control-plane anchor, daemon running)",
		Long: `Write an encrypted backup to FILE: the etcd snapshot, the cluster key and
state, the Kubernetes CAs, the membership and the token book. It opens with
STATE/backup.key only: keep a copy of that key off this machine.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			c := localapi.NewClient(state.Dir(stateDir(cmd)).Path(state.SocketFile))
			var resp localapi.BackupResponse
			if err := c.Do(cmd.Context(), "POST", "/v1/backup", localapi.BackupRequest{Path: path}, &resp); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup written to %s (%d bytes); it opens with the key in %s\n", resp.Path, resp.Size, resp.KeyFile)
			return nil
		},
	}
}

func restoreCmd() *cobra.Command {
	var keyFile string
	cmd := &cobra.Command{
		Use:   "restore --state DIR --key KEYFILE FILE",
		Short: "Bring a control-plane anchor back from a backup, into an empty state directory, before hepto run",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if kubebin.Embedded {
				// etcd's snapshot is restored by the full executable.
				return kubebin.Exec(os.Args)
			}
			key, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			dir := stateDir(cmd)
			if err := daemon.Restore(dir, string(key), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored into %s: start it with hepto run --state %s\n", dir, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "the backup's key file (a copy of the node's backup.key)")
	cmd.MarkFlagRequired("key")
	return cmd
}

package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/state"
)

func secretsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "The key of Secrets in etcd",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate",
		Short: "Give Secrets a new key on every control-plane node, and write them all again under it (on a control-plane node, daemon running)",
		Long: `Give Secrets a new encryption key: every control-plane node first gets it
beside the old one, then encrypts with it; every Secret is written again
under it, and the old key goes. Every control-plane node must answer; one
that does not stops the rotation with every Secret still readable, and the
command may be run again. Backups made afterwards carry the new key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// Each of its four steps waits for every apiserver.
			c := localapi.NewClient(state.Dir(stateDir(cmd)).Path(state.SocketFile)).WithTimeout(10 * time.Minute)
			var r localapi.SecretsRotated
			if err := c.Do(cmd.Context(), "POST", "/v1/secrets/rotate", nil, &r); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Secrets now encrypted under key %s: %d written again; control-plane nodes: %s\n",
				r.Key, r.Secrets, strings.Join(r.ControlPlanes, ", "))
			return nil
		},
	})
	return cmd
}

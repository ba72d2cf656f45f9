package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/anchor"
	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/state"
)

func tokenCmd() *cobra.Command {
	var req localapi.TokenRequest
	cmd := &cobra.Command{
		Use:   "token --name NODE [--ttl DURATION]",
		Short: "Print a join token for a new node (on an anchor, daemon running)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := localapi.NewClient(state.Dir(stateDir(cmd)).Path(state.SocketFile))
			var resp localapi.TokenResponse
			if err := c.Do(cmd.Context(), "POST", "/v1/token", req, &resp); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.Token)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Name, "name", "", "name of the node the token admits")
	cmd.Flags().DurationVar(&req.TTL, "ttl", anchor.DefaultTokenTTL, "how long the token stays valid")
	cmd.MarkFlagRequired("name")
	return cmd
}

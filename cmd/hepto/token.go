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
		Use:   "token --name NODE [--ttl DURATION] [--anchor --endpoint HOST:PORT] [--control-plane | --fabric]",
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
	cmd.Flags().BoolVar(&req.Anchor, "anchor", false, "the node joins as a further anchor (it needs a public UDP endpoint, --endpoint)")
	cmd.Flags().StringVar(&req.Endpoint, "endpoint", "", "the new anchor's public HOST:PORT (UDP)")
	cmd.Flags().BoolVar(&req.ControlPlane, "control-plane", false, "the node joins as a control-plane node")
	cmd.Flags().BoolVar(&req.Fabric, "fabric", false, "the node joins the fabric only: it never runs Kubernetes, and gets no Kubernetes credentials")
	cmd.MarkFlagRequired("name")
	return cmd
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/state"
)

func removeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "remove NODE",
		Short: "Remove a node from the cluster (on an anchor, daemon running): every node drops it as a peer",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := localapi.NewClient(state.Dir(stateDir(cmd)).Path(state.SocketFile))
			var resp localapi.RemoveResponse
			if err := c.Do(cmd.Context(), "POST", "/v1/remove", localapi.RemoveRequest{Name: args[0]}, &resp); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s removed from the cluster at %s\n", resp.Name, resp.Removed.Format("2006-01-02T15:04:05Z07:00"))
			return nil
		},
	}
}

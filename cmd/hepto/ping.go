package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/state"
)

func pingCmd() *cobra.Command {
	var count int
	cmd := &cobra.Command{
		Use:   "ping [-c N] NODE",
		Short: "Round trips to a node through the overlay, and the path each one took",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := localapi.NewClient(state.Dir(stateDir(cmd)).Path(state.SocketFile))
			out := cmd.OutOrStdout()
			answered := 0
			for i := 0; i < count; i++ {
				if i > 0 {
					select {
					case <-cmd.Context().Done():
						return cmd.Context().Err()
					case <-time.After(time.Second):
					}
				}
				var pong localapi.Pong
				if err := c.Do(cmd.Context(), "POST", "/v1/ping", localapi.PingRequest{Node: args[0]}, &pong); err != nil {
					if errors.Is(err, localapi.ErrNotRunning) {
						return err
					}
					fmt.Fprintln(out, err)
					continue
				}
				answered++
				path := pong.Path
				if pong.Via != "" {
					path += " via " + pong.Via
				}
				rtt := time.Duration(pong.RTTSeconds * float64(time.Second)).Round(10 * time.Microsecond)
				fmt.Fprintf(out, "pong from %s (%s) via %s (%s) in %s\n", pong.Node, pong.IP, orDash(pong.Endpoint), path, rtt)
			}
			if answered == 0 {
				return fmt.Errorf("%s did not answer", args[0])
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&count, "count", "c", 4, "round trips")
	return cmd
}

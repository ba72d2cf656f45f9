package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/state"
)

func netcheckCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "netcheck [--json]",
		Short: "What kind of NAT this node is behind, its public addresses, each anchor's reachability",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := localapi.NewClient(state.Dir(stateDir(cmd)).Path(state.SocketFile))
			var nc localapi.Netcheck
			if err := c.Do(cmd.Context(), "GET", "/v1/netcheck", nil, &nc); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(nc)
			}
			explain := map[string]string{
				"endpoint-independent": "direct paths to other homes work",
				"endpoint-dependent":   "symmetric NAT: paths to other homes go through a TURN relay",
				"none":                 "public address, no NAT",
				"unknown":              "not enough STUN answers to tell",
			}
			fmt.Fprintf(out, "NAT: %s (%s)\n", nc.NAT, explain[nc.NAT])
			fmt.Fprintf(out, "public IPv4: %s\npublic IPv6: %s\n", orDash(nc.PublicIPv4), orDash(nc.PublicIPv6))
			w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			if len(nc.Observations) > 0 {
				fmt.Fprintln(w, "\nSTUN SERVER\tSEES US AT\tRTT")
				for _, o := range nc.Observations {
					seen := o.Mapped
					if o.Error != "" {
						seen = "error: " + o.Error
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", o.Server, seen, secs(o.RTTSeconds))
				}
			}
			fmt.Fprintln(w, "\nANCHOR\tENDPOINT\tREACHABLE\tRTT")
			for _, a := range nc.Anchors {
				fmt.Fprintf(w, "%s\t%s\t%v\t%s\n", a.Name, a.Endpoint, a.Reachable, secs(a.RTTSeconds))
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func secs(s float64) string {
	if s == 0 {
		return "-"
	}
	return time.Duration(s * float64(time.Second)).Round(10 * time.Microsecond).String()
}

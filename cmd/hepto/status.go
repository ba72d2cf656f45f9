package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/localapi"
	"github.com/hepto-net/hepto/state"
)

func statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show this node and its peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := localapi.NewClient(state.Dir(stateDir(cmd)).Path(state.SocketFile))
			var st localapi.Status
			if err := c.Do(cmd.Context(), "GET", "/v1/status", nil, &st); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printStatus(out io.Writer, st localapi.Status) {
	role := "node"
	if st.Anchor {
		role = "anchor"
	}
	fmt.Fprintf(out, "%s (%s) in cluster %s, zone %s, %s, UDP port %d\n\n", st.Name, role, st.Cluster, orDash(st.Zone), strings.Join(st.OverlayIPs, " "), st.ListenPort)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "PEER\tZONE\tOVERLAY\tSTATE\tPATH\tENDPOINT\tRTT\tHANDSHAKE\tRX\tTX")
	for _, p := range st.Peers {
		state, path, rtt, hs := "down", p.Path, "-", "never"
		if p.Connected {
			state = "up"
		}
		if p.Via != "" {
			path += " via " + p.Via
		}
		if p.RTTSeconds != nil {
			rtt = (time.Duration(*p.RTTSeconds * float64(time.Second))).Round(100 * time.Microsecond).String()
		}
		if p.LastHandshake != nil {
			hs = time.Since(*p.LastHandshake).Round(time.Second).String() + " ago"
		}
		ip := ""
		if len(p.OverlayIPs) > 0 {
			ip = p.OverlayIPs[0]
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, orDash(p.Zone), ip, state, path, orDash(p.Endpoint), rtt, hs, bytes(p.RxBytes), bytes(p.TxBytes))
	}
	w.Flush()
	if k := st.Kubernetes; k.Role != "" && k.Role != "none" {
		ready := "not ready"
		if k.Ready {
			ready = "Ready"
		}
		var comps []string
		for _, name := range slices.Sorted(maps.Keys(k.Components)) {
			comps = append(comps, name+" "+k.Components[name])
		}
		fmt.Fprintf(out, "\nkubernetes: %s, %s; %s\n", k.Role, ready, strings.Join(comps, ", "))
		if cp := k.ControlPlane; cp != nil {
			var ms []string
			for _, m := range cp.Members {
				name := orDash(m.Name)
				if m.Learner {
					name += " (learner)"
				}
				ms = append(ms, name)
			}
			fmt.Fprintf(out, "etcd: leader %s; members %s\n", orDash(cp.Leader), strings.Join(ms, ", "))
		}
		if a := k.APIServer; a != nil {
			fmt.Fprintf(out, "apiserver: %s → %s\n", a.Endpoint, orDash(a.Target))
		}
		if len(k.Published) > 0 {
			fmt.Fprintln(out, "\npublished on this node's public addresses:")
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SERVICE\tADDRESS\tPROTOCOL\tBY\tCONNECTIONS\tIN\tOUT")
			for _, p := range k.Published {
				by := "kube-proxy"
				if p.Mode == "proxy" {
					by = "proxy"
					if p.ProxyProtocol {
						by = "proxy+PROXYv2"
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.Service, p.Address, p.Protocol, by, p.Connections, bytes(p.BytesIn), bytes(p.BytesOut))
			}
			w.Flush()
		}
	}
	// Only what needs attention: a service that failed or is not yet up.
	first := true
	for _, s := range st.Services {
		if s.State == "running" || s.State == "done" {
			continue
		}
		if first {
			fmt.Fprintln(out)
			first = false
		}
		fmt.Fprintf(out, "service %s: %s (%d restarts)\n", s.Name, s.State, s.Restarts)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

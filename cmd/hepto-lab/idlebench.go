package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/lab/cluster"
)

func idleBenchCmd() *cobra.Command {
	var homes int
	var window time.Duration
	cmd := &cobra.Command{
		Use:   "idle-bench",
		Short: "CPU and memory of idle daemons, each with many peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := heptoBin(cmd)
			if err != nil {
				return err
			}
			return idleBench(cmd.Context(), cmd.OutOrStdout(), bin, homes, window)
		},
	}
	cmd.Flags().IntVar(&homes, "homes", 10, "homes, each behind its own endpoint-independent NAT (each node then has homes peers)")
	cmd.Flags().DurationVar(&window, "window", time.Minute, "how long CPU is counted")
	return cmd
}

func idleBench(ctx context.Context, out io.Writer, bin string, homes int, window time.Duration) error {
	n, err := newNATLab(ctx, bin)
	if err != nil {
		return err
	}
	defer n.close()
	var nodes []*cluster.Node
	for i := range homes {
		name := fmt.Sprintf("home-%d", i+1)
		h, err := n.l.AddHome(name, lab.HomeOptions{NAT: lab.EIM})
		if err != nil {
			return err
		}
		node, err := n.c.Join(name, h.Machines[0], n.anchor)
		if err != nil {
			return err
		}
		nodes = append(nodes, node)
	}
	fmt.Fprintf(out, "%d homes joined; waiting for every pair's direct path ...\n", homes)
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				if _, err := pathWait(a, b.Name, 90*time.Second, "direct"); err != nil {
					return err
				}
			}
		}
	}
	// Let the first RTT round and the closing ICE agents pass.
	time.Sleep(15 * time.Second)
	procs := []*lab.Proc{n.anchor.Proc}
	for _, node := range nodes {
		procs = append(procs, node.Proc)
	}
	before := make([]float64, len(procs))
	for i, p := range procs {
		before[i] = cpuSeconds([]*lab.Proc{p})
	}
	fmt.Fprintf(out, "counting CPU for %s ...\n", window)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "\nnode\tpeers\tCPU %% (idle, %s)\tpeak RSS MB\n", window)
	var sum float64
	for i, p := range procs {
		cpu := (cpuSeconds([]*lab.Proc{p}) - before[i]) / window.Seconds() * 100
		name := "anchor"
		if i > 0 {
			name = nodes[i-1].Name
			sum += cpu
		}
		fmt.Fprintf(w, "%s\t%d\t%.2f\t%.0f\n", name, homes, cpu, peakRSS([]*lab.Proc{p}))
	}
	fmt.Fprintf(w, "mean of the homes\t%d\t%.2f\t\n", homes, sum/float64(homes))
	return w.Flush()
}

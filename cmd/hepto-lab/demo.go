package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/lab/cluster"
)

func demoCmd() *cobra.Command {
	var exit, kube bool
	var web, caddy, pebble string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "An anchor and three homes behind NAT (one symmetric); stays up until Ctrl-C",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := heptoBin(cmd)
			if err != nil {
				return err
			}
			return demo(cmd, bin, exit, kube, web, caddy, pebble)
		},
	}
	cmd.Flags().BoolVar(&exit, "exit", false, "clean up and exit once the demo has run, instead of waiting for Ctrl-C")
	cmd.Flags().BoolVar(&kube, "kubernetes", true, "run Kubernetes on the nodes, and one pod on each")
	cmd.Flags().StringVar(&web, "web", "bin/web", "the demo image's program (make demo builds it from lab/web)")
	cmd.Flags().StringVar(&caddy, "caddy", "bin/caddy", "Caddy, the ingress of the published site (make ingress-tools); \"\": no published site")
	cmd.Flags().StringVar(&pebble, "pebble", "bin/pebble", "Pebble, the lab's ACME server (make ingress-tools)")
	return cmd
}

func demo(cmd *cobra.Command, bin string, exit, kube bool, web, caddy, pebble string) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	l, err := lab.New(ctx, lab.Options{Logger: logger()})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "\ncleaning up: stopping the nodes, deleting the namespaces")
		l.Close()
	}()
	dir, err := os.MkdirTemp("", "hepto-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c := cluster.New(ctx, l, bin, dir)
	if kube {
		archive, err := webArchive(web, dir)
		if err != nil {
			return err
		}
		c.Kubernetes, c.Images = true, []string{archive}
		// Before the lab's end: pods outlive hepto on purpose.
		defer c.RemovePods()
	}

	step := func(format string, a ...any) { fmt.Fprintf(out, "==> "+format+"\n", a...) }
	step("lab %s: Internet 203.0.113.0/24, every home on 192.168.1.0/24 behind its own NAT box", l.Prefix)
	pub, err := l.AddPublicHost("anchor")
	if err != nil {
		return err
	}
	homes := []struct {
		name string
		nat  lab.NAT
	}{{"home-a", lab.EIM}, {"home-b", lab.EIM}, {"home-c", lab.Symmetric}}
	hosts := map[string]*lab.Host{}
	for _, h := range homes {
		home, err := l.AddHome(h.name, lab.HomeOptions{NAT: h.nat})
		if err != nil {
			return err
		}
		hosts[h.name] = home.Machines[0]
		kind := "endpoint-independent NAT (MASQUERADE)"
		if h.nat == lab.Symmetric {
			kind = "symmetric NAT (MASQUERADE --random-fully)"
		}
		step("%s: machine 192.168.1.2 behind %s, public address %s", h.name, kind, home.PublicIP)
	}

	step("anchor: hepto init --cluster demo --endpoint %s:51820, then hepto run", pub.IPv4)
	anchor, err := c.Anchor("anchor", pub)
	if err != nil {
		return err
	}
	nodes := []*cluster.Node{anchor}
	for _, h := range homes {
		step("%s: hepto token --name %s (on the anchor), then hepto run --join TOKEN", h.name, h.name)
		n, err := c.Join(h.name, hosts[h.name], anchor)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
	}
	step("waiting for every node to see every other one connected")
	for _, n := range nodes {
		var others []string
		for _, m := range nodes {
			if m != n {
				others = append(others, m.Name)
			}
		}
		if _, err := n.WaitConnected(90*time.Second, others...); err != nil {
			return err
		}
	}
	step("waiting for the homes' own paths: direct through EIM boxes, TURN relay for the symmetric one")
	for _, a := range nodes[1:] {
		for _, b := range nodes[1:] {
			if a != b {
				if _, err := pathWait(a, b.Name, 60*time.Second, "direct", "relay"); err != nil {
					return err
				}
			}
		}
	}
	for _, n := range nodes {
		st, err := n.Hepto("status")
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\n$ hepto status    # on %s\n%s", n.Name, st)
	}
	fmt.Fprintln(out)
	for i, n := range nodes[1:] {
		to := nodes[1+(i+1)%3]
		st, _, err := to.Status()
		if err != nil {
			return err
		}
		for _, ip := range st.OverlayIPs {
			res, err := n.Host.Run(ctx, "ping", "-c", "3", "-i", "0.3", "-W", "2", ip)
			summary := lastLine(res)
			if err != nil {
				summary = "FAILED: " + err.Error()
			}
			fmt.Fprintf(out, "%s → %s (%s): %s\n", n.Name, to.Name, ip, summary)
		}
	}
	for _, to := range []string{"home-b", "home-c"} {
		res, err := nodes[1].Hepto("ping", "-c", "2", to)
		if err != nil {
			res = "FAILED: " + err.Error() + "\n"
		}
		fmt.Fprintf(out, "\n$ hepto ping -c 2 %s    # on home-a\n%s", to, res)
	}
	if kube {
		if err := demoKubernetes(cmd, c, nodes); err != nil {
			return err
		}
		if caddy != "" {
			if err := demoIngress(cmd, l, c, anchor, nodes[3], web, caddy, pebble); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(out, "\nLogs and state directories are under %s.\n", dir)
	fmt.Fprintf(out, "Look around, for instance:\n  ip netns exec %s %s status --state %s\n", hosts["home-a"].Netns, bin, nodes[1].State)
	if kube {
		fmt.Fprintf(out, "  ip netns exec %s %s kubectl --state %s get pods -A -o wide\n", pub.Netns, bin, anchor.State)
	}
	if exit {
		return nil
	}
	fmt.Fprintln(out, "The cluster stays up until Ctrl-C.")
	<-ctx.Done()
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/lab/cluster"
)

func natBenchCmd() *cobra.Command {
	var seconds, rounds int
	var idle time.Duration
	cmd := &cobra.Command{
		Use:   "nat-bench",
		Short: "Paths between homes: time to connect per NAT pairing, recovery, throughput, idle traffic",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := heptoBin(cmd)
			if err != nil {
				return err
			}
			return natBench(cmd.Context(), cmd.OutOrStdout(), bin, time.Duration(seconds)*time.Second, idle, rounds)
		},
	}
	cmd.Flags().IntVar(&seconds, "seconds", 10, "length of each iperf3 run")
	cmd.Flags().IntVar(&rounds, "rounds", 3, "rounds of each measurement; throughput runs every path once per round, in turn")
	cmd.Flags().DurationVar(&idle, "idle", 3*time.Minute, "how long idle traffic is counted")
	return cmd
}

// natLab is a lab with an anchor and a cluster in it.
type natLab struct {
	l      *lab.Lab
	c      *cluster.Cluster
	anchor *cluster.Node
	dir    string
}

func newNATLab(ctx context.Context, bin string) (*natLab, error) {
	l, err := lab.New(ctx, lab.Options{Logger: logger(), Shaping: lab.ShapeNone})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hepto-natbench-")
	if err != nil {
		l.Close()
		return nil, err
	}
	n := &natLab{l: l, dir: dir, c: cluster.New(ctx, l, bin, dir)}
	pub, err := l.AddPublicHost("anchor")
	if err == nil {
		n.anchor, err = n.c.Anchor("anchor", pub)
	}
	if err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

func (n *natLab) close() {
	n.l.Close()
	os.RemoveAll(n.dir)
}

// pathWait waits for a node's path to peer and returns it.
func pathWait(n *cluster.Node, peer string, timeout time.Duration, want ...string) (string, error) {
	var path string
	err := cluster.Eventually(timeout, func() error {
		st, _, err := n.Status()
		if err != nil {
			return err
		}
		p, ok := cluster.Peer(st, peer)
		if !ok || !p.Connected || p.Via == "anchor" {
			return fmt.Errorf("%s → %s: no path of its own yet", n.Name, peer)
		}
		path = p.Path
		for _, w := range want {
			if w == path {
				return nil
			}
		}
		return fmt.Errorf("%s → %s: path %s", n.Name, peer, path)
	})
	return path, err
}

type pairing struct {
	name string
	a, b lab.NAT
	lan  bool
}

type connectResult struct {
	name             string
	path             string
	firstPing, ready time.Duration
}

// connectTime starts home A, then home B, and times B's first ping answer
// from A and the pair's own path.
func connectTime(ctx context.Context, bin string, p pairing) (connectResult, error) {
	n, err := newNATLab(ctx, bin)
	if err != nil {
		return connectResult{}, err
	}
	defer n.close()
	var ha, hb *lab.Host
	if p.lan {
		home, err := n.l.AddHome("home", lab.HomeOptions{NAT: p.a, Machines: 2})
		if err != nil {
			return connectResult{}, err
		}
		ha, hb = home.Machines[0], home.Machines[1]
	} else {
		homeA, err := n.l.AddHome("home-a", lab.HomeOptions{NAT: p.a})
		if err != nil {
			return connectResult{}, err
		}
		homeB, err := n.l.AddHome("home-b", lab.HomeOptions{NAT: p.b})
		if err != nil {
			return connectResult{}, err
		}
		ha, hb = homeA.Machines[0], homeB.Machines[0]
	}
	a, err := n.c.Join("a", ha, n.anchor)
	if err != nil {
		return connectResult{}, err
	}
	if _, err := a.WaitConnected(30*time.Second, "anchor"); err != nil {
		return connectResult{}, err
	}
	tok, err := n.anchor.Token("b")
	if err != nil {
		return connectResult{}, err
	}
	b := n.c.Node("b", hb)
	start := time.Now()
	if err := b.Start("--join", tok); err != nil {
		return connectResult{}, err
	}
	r := connectResult{name: p.name}
	err = cluster.Eventually(30*time.Second, func() error {
		st, _, err := b.Status()
		if err != nil {
			return err
		}
		_, err = ha.Run(ctx, "ping", "-c", "1", "-W", "0.2", st.OverlayIPs[0])
		return err
	})
	if err != nil {
		return r, err
	}
	r.firstPing = time.Since(start)
	r.path, err = pathWait(a, "b", 60*time.Second, "direct", "relay")
	r.ready = time.Since(start)
	return r, err
}

// recovery times a direct pair's return after home A's box is renumbered.
func recovery(ctx context.Context, bin string) (time.Duration, error) {
	n, err := newNATLab(ctx, bin)
	if err != nil {
		return 0, err
	}
	defer n.close()
	homeA, err := n.l.AddHome("home-a", lab.HomeOptions{NAT: lab.EIM})
	if err != nil {
		return 0, err
	}
	homeB, err := n.l.AddHome("home-b", lab.HomeOptions{NAT: lab.EIM})
	if err != nil {
		return 0, err
	}
	a, err := n.c.Join("a", homeA.Machines[0], n.anchor)
	if err != nil {
		return 0, err
	}
	b, err := n.c.Join("b", homeB.Machines[0], n.anchor)
	if err != nil {
		return 0, err
	}
	if _, err := pathWait(a, "b", 30*time.Second, "direct"); err != nil {
		return 0, err
	}
	st, _, err := b.Status()
	if err != nil {
		return 0, err
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	if err := homeA.Machines[0].Command(pctx, "ping", "-i", "0.2", st.OverlayIPs[0]).Start(); err != nil {
		return 0, err
	}
	addr, err := homeA.Renumber()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	err = cluster.Eventually(60*time.Second, func() error {
		st, _, err := b.Status()
		if err != nil {
			return err
		}
		p, _ := cluster.Peer(st, "a")
		if p.Path != "direct" || !p.Connected || !strings.HasPrefix(p.Endpoint, addr.String()+":") {
			return fmt.Errorf("b → a: %s %s", p.Path, p.Endpoint)
		}
		_, err = homeA.Machines[0].Run(ctx, "ping", "-c", "1", "-W", "0.5", st.OverlayIPs[0])
		return err
	})
	return time.Since(start), err
}

func natBench(ctx context.Context, out io.Writer, bin string, d, idle time.Duration, rounds int) error {
	if rounds < 1 {
		return fmt.Errorf("--rounds %d: at least one", rounds)
	}
	pairings := []pairing{
		{"LAN (one home)", lab.EIM, lab.EIM, true},
		{"EIM – EIM", lab.EIM, lab.EIM, false},
		{"EIM – symmetric", lab.EIM, lab.Symmetric, false},
		{"symmetric – symmetric", lab.Symmetric, lab.Symmetric, false},
	}
	conns := map[string][]connectResult{}
	var recs []time.Duration
	for round := 1; round <= rounds; round++ {
		for _, p := range pairings {
			fmt.Fprintf(out, "round %d/%d: time to connect, %s ...\n", round, rounds, p.name)
			r, err := connectTime(ctx, bin, p)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			conns[p.name] = append(conns[p.name], r)
		}
		fmt.Fprintf(out, "round %d/%d: recovery after renumbering ...\n", round, rounds)
		rec, err := recovery(ctx, bin)
		if err != nil {
			return fmt.Errorf("recovery: %w", err)
		}
		recs = append(recs, rec)
	}
	fmt.Fprintln(out, "throughput and idle traffic ...")
	results, idleRows, err := natThroughputAndIdle(ctx, out, bin, d, idle, rounds)
	if err != nil {
		return err
	}

	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(out)
	fmt.Fprintf(w, "pairing\tpath\tfirst ping answered (median, min–max of %d)\tpath of its own (median, min–max)\n", rounds)
	for _, p := range pairings {
		rs := conns[p.name]
		var paths []string
		var first, ready []time.Duration
		for _, r := range rs {
			if !slices.Contains(paths, r.path) {
				paths = append(paths, r.path)
			}
			first, ready = append(first, r.firstPing), append(ready, r.ready)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.name, strings.Join(paths, ", "), durationRange(first, 10*time.Millisecond), durationRange(ready, 10*time.Millisecond))
	}
	w.Flush()
	fmt.Fprintf(out, "\nrecovery after a home's box is renumbered (conntrack flushed), traffic flowing: %s\n", durationRange(recs, 100*time.Millisecond))
	printResults(out, results)
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "idle traffic on the first home's uplink (IP, UDP, Ethernet), %s\tout B/min\tin B/min\n", idle)
	for _, r := range idleRows {
		fmt.Fprintf(w, "%s\t%.0f\t%.0f\n", r.what, r.out, r.in)
	}
	return w.Flush()
}

type idleRow struct {
	what    string
	out, in float64
}

// natThroughputAndIdle measures a direct and a relayed pair against stock
// wireguard-go between two public hosts, then the idle traffic of home A.
func natThroughputAndIdle(ctx context.Context, out io.Writer, bin string, d, idle time.Duration, rounds int) ([]result, []idleRow, error) {
	n, err := newNATLab(ctx, bin)
	if err != nil {
		return nil, nil, err
	}
	defer n.close()
	stock := filepath.Join(n.dir, "wireguard-go")
	if b, err := exec.CommandContext(ctx, "go", "build", "-o", stock, stockModule).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("build stock wireguard-go: %w: %s", err, b)
	}
	left, err := n.l.AddPublicHost("left")
	if err != nil {
		return nil, nil, err
	}
	right, err := n.l.AddPublicHost("right")
	if err != nil {
		return nil, nil, err
	}
	homes := map[string]*lab.Home{}
	for _, h := range []struct {
		name string
		nat  lab.NAT
	}{{"home-a", lab.EIM}, {"home-b", lab.EIM}, {"home-c", lab.Symmetric}, {"home-d", lab.EIM}, {"home-e", lab.EIM}} {
		if homes[h.name], err = n.l.AddHome(h.name, lab.HomeOptions{NAT: h.nat}); err != nil {
			return nil, nil, err
		}
	}
	nodes := map[string]*cluster.Node{}
	for _, name := range []string{"home-a", "home-b", "home-c", "home-d", "home-e"} {
		var flags []string
		if name == "home-d" || name == "home-e" {
			flags = []string{"--rtt-interval", "0"} // the keepalive baseline
		}
		if nodes[name], err = n.c.Join(name, homes[name].Machines[0], n.anchor, flags...); err != nil {
			return nil, nil, err
		}
	}
	if _, err := pathWait(nodes["home-d"], "home-e", 30*time.Second, "direct"); err != nil {
		return nil, nil, err
	}
	if _, err := pathWait(nodes["home-a"], "home-b", 30*time.Second, "direct"); err != nil {
		return nil, nil, err
	}
	if _, err := pathWait(nodes["home-c"], "home-b", 60*time.Second, "relay"); err != nil {
		return nil, nil, err
	}
	stB, _, err := nodes["home-b"].Status()
	if err != nil {
		return nil, nil, err
	}
	if _, err := homes["home-b"].Machines[0].Start(ctx, filepath.Join(n.dir, "iperf3-b.log"), "iperf3", "-s"); err != nil {
		return nil, nil, err
	}
	if _, err := right.Start(ctx, filepath.Join(n.dir, "iperf3-r.log"), "iperf3", "-s"); err != nil {
		return nil, nil, err
	}
	wg, err := stockPath(ctx, n.l, n.dir, stock, left, right)
	if err != nil {
		return nil, nil, err
	}
	// hepto between the two public hosts: the tunnel without NAT boxes.
	nl, err := n.c.Join("left", left, n.anchor)
	if err != nil {
		return nil, nil, err
	}
	nr, err := n.c.Join("right", right, n.anchor)
	if err != nil {
		return nil, nil, err
	}
	if _, err := pathWait(nl, "right", 30*time.Second, "direct"); err != nil {
		return nil, nil, err
	}
	stR, _, err := nr.Status()
	if err != nil {
		return nil, nil, err
	}
	// The paths take turns, A/B/A/B, round after round.
	var results []result
	for round := 1; round <= rounds; round++ {
		for _, c := range []struct {
			from *lab.Host
			p    path
		}{
			{left, wg},
			{left, path{name: "hepto, no NAT (public hosts)", target: stR.OverlayIPs[0], procs: []*lab.Proc{nl.Proc, nr.Proc}}},
			{homes["home-a"].Machines[0], path{name: "hepto direct (EIM–EIM)", target: stB.OverlayIPs[0], procs: []*lab.Proc{nodes["home-a"].Proc, nodes["home-b"].Proc}}},
			{homes["home-c"].Machines[0], path{name: "hepto relayed (symmetric–EIM)", target: stB.OverlayIPs[0], procs: []*lab.Proc{nodes["home-c"].Proc, nodes["home-b"].Proc}}},
		} {
			fmt.Fprintf(out, "round %d/%d: iperf3 %s ...\n", round, rounds, c.p.name)
			r, err := measure(ctx, c.from, c.p, 1, d)
			if err != nil {
				return nil, nil, err
			}
			results = append(results, r)
		}
	}

	// Idle: count, on home A's and home D's boxes, what goes to and comes
	// from the other home of the pair and the anchor, per minute.
	counts := []struct {
		what string
		box  *lab.Host
		ip   string
	}{
		{"home A ↔ home B (direct, RTT every 90 s)", homes["home-a"].Box, homes["home-b"].PublicIP.String()},
		{"home D ↔ home E (direct, --rtt-interval 0)", homes["home-d"].Box, homes["home-e"].PublicIP.String()},
		{"home A ↔ anchor", homes["home-a"].Box, n.anchor.Host.IPv4.String()},
	}
	for _, c := range counts {
		for _, rule := range [][]string{{"-o", "wan", "-d", c.ip}, {"-i", "wan", "-s", c.ip}} {
			args := append([]string{"-w", "-I", "FORWARD"}, rule...)
			if _, err := c.box.Run(ctx, "iptables", append(args, "-j", "RETURN")...); err != nil {
				return nil, nil, err
			}
		}
	}
	time.Sleep(5 * time.Second) // let iperf3's tail drain
	before := map[*lab.Host]map[string]uint64{}
	for _, c := range counts {
		if before[c.box], err = forwardCounters(ctx, c.box); err != nil {
			return nil, nil, err
		}
	}
	fmt.Fprintf(out, "idle for %s ...\n", idle)
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-time.After(idle):
	}
	var rows []idleRow
	for _, c := range counts {
		after, err := forwardCounters(ctx, c.box)
		if err != nil {
			return nil, nil, err
		}
		perMin := func(k string) float64 { return float64(after[k]-before[c.box][k]) / idle.Minutes() }
		rows = append(rows, idleRow{what: c.what, out: perMin("out " + c.ip), in: perMin("in " + c.ip)})
	}
	return results, rows, nil
}

// durationRange is "median (min–max)", rounded.
func durationRange(ds []time.Duration, round time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%s–%s)", medianDuration(ds).Round(round), slices.Min(ds).Round(round), slices.Max(ds).Round(round))
}

// forwardCounters reads the byte counters of the FORWARD rules that match
// one address: "out IP" and "in IP".
func forwardCounters(ctx context.Context, box *lab.Host) (map[string]uint64, error) {
	raw, err := box.Run(ctx, "iptables", "-w", "-L", "FORWARD", "-v", "-x", "-n")
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	for _, line := range strings.Split(raw, "\n") {
		f := strings.Fields(line)
		// pkts bytes target prot opt in out source destination
		if len(f) < 9 || f[2] != "RETURN" {
			continue
		}
		bytes, _ := strconv.ParseUint(f[1], 10, 64)
		switch {
		case f[6] == "wan" && f[7] == "0.0.0.0/0":
			m["out "+f[8]] += bytes
		case f[5] == "wan":
			m["in "+f[7]] += bytes
		}
	}
	return m, nil
}

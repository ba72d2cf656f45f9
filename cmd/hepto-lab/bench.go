package main

import (
	"context"
	"encoding/json"
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

// stockModule is the wireguard-go the tunnel is built on, built as its own
// command for comparison.
const stockModule = "golang.zx2c4.com/wireguard"

func benchCmd() *cobra.Command {
	var seconds, rounds int
	var streams []int
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "iperf3 TCP through hepto, stock wireguard-go and the raw veth, side by side",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := heptoBin(cmd)
			if err != nil {
				return err
			}
			return bench(cmd.Context(), cmd.OutOrStdout(), bin, time.Duration(seconds)*time.Second, streams, rounds)
		},
	}
	cmd.Flags().IntVar(&seconds, "seconds", 10, "length of each iperf3 run")
	cmd.Flags().IntVar(&rounds, "rounds", 3, "rounds; each runs every path once, in turn")
	cmd.Flags().IntSliceVar(&streams, "streams", []int{1, 4}, "parallel TCP streams of each run")
	return cmd
}

// path is one way between the two hosts, with the daemons that carry it.
type path struct {
	name   string
	target string      // iperf3 server address seen from the left host
	procs  []*lab.Proc // daemons, for CPU and memory
}

type result struct {
	path    string
	streams int
	gbps    float64
	cpuPerG float64 // daemon CPU seconds per GB moved, both ends
	rssMB   float64 // largest peak RSS of the daemons
}

func bench(ctx context.Context, out io.Writer, bin string, d time.Duration, streams []int, rounds int) error {
	if rounds < 1 {
		return fmt.Errorf("--rounds %d: at least one", rounds)
	}
	dir, err := os.MkdirTemp("", "hepto-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	stock := filepath.Join(dir, "wireguard-go")
	fmt.Fprintf(out, "building stock wireguard-go (%s) ...\n", stockModule)
	if b, err := exec.CommandContext(ctx, "go", "build", "-o", stock, stockModule).CombinedOutput(); err != nil {
		return fmt.Errorf("build stock wireguard-go: %w: %s", err, b)
	}
	l, err := lab.New(ctx, lab.Options{Logger: logger()})
	if err != nil {
		return err
	}
	defer l.Close()
	left, err := l.AddPublicHost("left")
	if err != nil {
		return err
	}
	right, err := l.AddPublicHost("right")
	if err != nil {
		return err
	}
	if _, err := right.Start(ctx, filepath.Join(dir, "iperf3.log"), "iperf3", "-s"); err != nil {
		return err
	}
	paths := []path{{name: "raw veth", target: right.IPv4.String()}}

	wg, err := stockPath(ctx, l, dir, stock, left, right)
	if err != nil {
		return err
	}
	paths = append(paths, wg)

	c := cluster.New(ctx, l, bin, filepath.Join(dir, "hepto"))
	a, err := c.Anchor("left", left)
	if err != nil {
		return err
	}
	b, err := c.Join("right", right, a)
	if err != nil {
		return err
	}
	st, err := b.WaitConnected(60*time.Second, "left")
	if err != nil {
		return err
	}
	paths = append(paths, path{name: "hepto", target: st.OverlayIPs[0], procs: []*lab.Proc{a.Proc, b.Proc}})

	// hepto and the reference alternate, A/B/A/B, so that a change in
	// the machine's speed during the run weighs on both.
	var results []result
	for round := 1; round <= rounds; round++ {
		for _, n := range streams {
			for _, p := range paths {
				fmt.Fprintf(out, "round %d/%d: iperf3 %s, %d stream(s), %s ...\n", round, rounds, p.name, n, d)
				r, err := measure(ctx, left, p, n, d)
				if err != nil {
					return err
				}
				results = append(results, r)
			}
		}
	}
	printResults(out, results)
	return nil
}

// stockPath runs stock wireguard-go on both hosts, configured with wg(8).
// Interface names carry the lab prefix: wireguard-go's control sockets in
// /var/run/wireguard are shared by every namespace.
func stockPath(ctx context.Context, l *lab.Lab, dir, stock string, left, right *lab.Host) (path, error) {
	suffix := strings.TrimPrefix(l.Prefix, "hl")
	type end struct {
		h     *lab.Host
		ifc   string
		ip    string
		key   string
		pub   string
		proc  *lab.Proc
		other *end
	}
	ends := []*end{{h: left, ifc: "wgl" + suffix, ip: "10.99.0.1"}, {h: right, ifc: "wgr" + suffix, ip: "10.99.0.2"}}
	ends[0].other, ends[1].other = ends[1], ends[0]
	for _, e := range ends {
		k, err := exec.CommandContext(ctx, "wg", "genkey").Output()
		if err != nil {
			return path{}, fmt.Errorf("wg genkey (install wireguard-tools): %w", err)
		}
		e.key = filepath.Join(dir, e.ifc+".key")
		if err := os.WriteFile(e.key, k, 0o600); err != nil {
			return path{}, err
		}
		pubCmd := exec.CommandContext(ctx, "wg", "pubkey")
		pubCmd.Stdin = strings.NewReader(string(k))
		pub, err := pubCmd.Output()
		if err != nil {
			return path{}, err
		}
		e.pub = strings.TrimSpace(string(pub))
		p, err := e.h.Start(ctx, filepath.Join(dir, e.ifc+".log"), stock, "-f", e.ifc)
		if err != nil {
			return path{}, err
		}
		e.proc = p
	}
	for _, e := range ends {
		// wg(8) needs wireguard-go's control socket, made once it is up.
		err := cluster.Eventually(30*time.Second, func() error {
			_, err := e.h.Run(ctx, "wg", "set", e.ifc, "private-key", e.key, "listen-port", "51899",
				"peer", e.other.pub, "allowed-ips", e.other.ip+"/32", "endpoint", e.other.h.IPv4.String()+":51899")
			return err
		})
		if err != nil {
			return path{}, err
		}
		if _, err := e.h.Run(ctx, "ip", "addr", "add", e.ip+"/24", "dev", e.ifc); err != nil {
			return path{}, err
		}
		if _, err := e.h.Run(ctx, "ip", "link", "set", e.ifc, "mtu", "1420", "up"); err != nil {
			return path{}, err
		}
	}
	return path{name: "wireguard-go", target: "10.99.0.2", procs: []*lab.Proc{ends[0].proc, ends[1].proc}}, nil
}

func measure(ctx context.Context, from *lab.Host, p path, streams int, d time.Duration) (result, error) {
	cpu0 := cpuSeconds(p.procs)
	raw, err := from.Run(ctx, "iperf3", "-c", p.target, "-t", strconv.Itoa(int(d.Seconds())), "-P", strconv.Itoa(streams), "-J")
	if err != nil {
		return result{}, fmt.Errorf("iperf3 over %s: %w", p.name, err)
	}
	cpu := cpuSeconds(p.procs) - cpu0
	var rep struct {
		End struct {
			SumReceived struct {
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(raw), &rep); err != nil {
		return result{}, fmt.Errorf("iperf3 output: %w", err)
	}
	r := result{path: p.name, streams: streams, gbps: rep.End.SumReceived.BitsPerSecond / 1e9}
	if len(p.procs) > 0 && rep.End.SumReceived.Bytes > 0 {
		r.cpuPerG = cpu / (rep.End.SumReceived.Bytes / 1e9)
		r.rssMB = peakRSS(p.procs)
	}
	return r, nil
}

// cpuSeconds is the user and system time of the processes so far.
func cpuSeconds(procs []*lab.Proc) float64 {
	var ticks float64
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
		if err != nil {
			continue
		}
		// Fields after the command name, which may hold spaces.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		ticks += ut + st
	}
	return ticks / 100 // USER_HZ
}

// peakRSS is the largest VmHWM among the processes, in MB.
func peakRSS(procs []*lab.Proc) float64 {
	var peak float64
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				peak = max(peak, kb/1024)
			}
		}
	}
	return peak
}

// summary is the samples of one path and stream count.
type summary struct {
	path          string
	streams       int
	gbps, cpuPerG []float64
	rssMB         float64 // the largest
}

// summarize groups results by path and streams, in the order first seen.
func summarize(results []result) []*summary {
	var out []*summary
	for _, r := range results {
		i := slices.IndexFunc(out, func(s *summary) bool { return s.path == r.path && s.streams == r.streams })
		if i < 0 {
			out = append(out, &summary{path: r.path, streams: r.streams})
			i = len(out) - 1
		}
		s := out[i]
		s.gbps = append(s.gbps, r.gbps)
		if r.cpuPerG > 0 {
			s.cpuPerG = append(s.cpuPerG, r.cpuPerG)
		}
		s.rssMB = max(s.rssMB, r.rssMB)
	}
	return out
}

// median of samples; the mean of the middle two for an even count.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianDuration is median for durations.
func medianDuration(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(median(xs))
}

// printResults prints the median of each path's samples, with their
// range; ratios are of medians.
func printResults(out io.Writer, results []result) {
	sums := summarize(results)
	ref := map[int]float64{}
	for _, s := range sums {
		if s.path == "wireguard-go" {
			ref[s.streams] = median(s.gbps)
		}
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "path\tstreams\truns\tGbit/s (median)\tmin–max\t× wireguard-go\tCPU s/GB\tpeak RSS MB\t")
	for _, s := range sums {
		g := median(s.gbps)
		ratio, cpu, rss := "-", "-", "-"
		if ref[s.streams] > 0 {
			ratio = fmt.Sprintf("%.2f", g/ref[s.streams])
		}
		if len(s.cpuPerG) > 0 {
			cpu, rss = fmt.Sprintf("%.2f", median(s.cpuPerG)), fmt.Sprintf("%.0f", s.rssMB)
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%.2f\t%.2f–%.2f\t%s\t%s\t%s\t\n", s.path, s.streams, len(s.gbps), g, slices.Min(s.gbps), slices.Max(s.gbps), ratio, cpu, rss)
	}
	w.Flush()
}

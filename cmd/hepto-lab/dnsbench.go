package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/miekg/dns"
	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/lab/cluster"
)

// corednsModule is the CoreDNS the DNS benchmark compares with, built from
// the module proxy; 1.15.0 builds with Go 1.26.
const corednsModule = "github.com/coredns/coredns@v1.15.0"

func dnsBenchCmd() *cobra.Command {
	var seconds, rounds int
	var coredns string
	var prom, kube bool
	var ko kubeDNSOptions
	cmd := &cobra.Command{
		Use:   "dns-bench",
		Short: "dnsperf against hepto's DNS and CoreDNS, same names, side by side",
		Long: "dnsperf against hepto's DNS and CoreDNS, same names, side by side. With --kubernetes: a\n" +
			"cluster with Kubernetes, 1,000 Services, dnsperf from a pod against hepto's DNS and CoreDNS's\n" +
			"kubernetes plugin, and the time for kube-proxy and the DNS servers to follow new Services.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := heptoBin(cmd)
			if err != nil {
				return err
			}
			d := time.Duration(seconds) * time.Second
			if kube {
				ko.bin, ko.coredns, ko.d, ko.rounds = bin, coredns, d, rounds
				return dnsBenchKube(cmd.Context(), cmd.OutOrStdout(), ko)
			}
			return dnsBench(cmd.Context(), cmd.OutOrStdout(), bin, coredns, prom, d, rounds)
		},
	}
	cmd.Flags().IntVar(&seconds, "seconds", 10, "length of each dnsperf run")
	cmd.Flags().IntVar(&rounds, "rounds", 2, "runs of each server, alternated")
	cmd.Flags().StringVar(&coredns, "coredns", "", "CoreDNS binary (default: built from "+corednsModule+")")
	cmd.Flags().BoolVar(&prom, "coredns-prometheus", true, "CoreDNS counts its queries for Prometheus, as hepto does")
	cmd.Flags().BoolVar(&kube, "kubernetes", false, "the Kubernetes part: Service names from a pod, with Services in the apiserver")
	kubeDNSFlags(cmd, &ko)
	return cmd
}

// dnsResolverCmd is the upstream resolver of the benchmark, on a public
// host of the lab: NAME.example. A and AAAA for any NAME, TTL one hour.
func dnsResolverCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "dns-resolver",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dns.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
				r := new(dns.Msg)
				r.SetReply(q)
				name := q.Question[0].Name
				switch {
				case !dns.IsSubDomain("example.", name):
					r.Rcode = dns.RcodeNameError
				case q.Question[0].Qtype == dns.TypeA:
					r.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600}, A: []byte{192, 0, 2, 80}}}
				case q.Question[0].Qtype == dns.TypeAAAA:
					r.Answer = []dns.RR{&dns.AAAA{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 3600}, AAAA: []byte{0x20, 1, 0xd, 0xb8, 15: 0x80}}}
				}
				w.WriteMsg(r)
			})
			errc := make(chan error, 2)
			for _, n := range []string{"udp", "tcp"} {
				srv := &dns.Server{Addr: ":53", Net: n}
				go func() { errc <- srv.ListenAndServe() }()
			}
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGTERM)
			select {
			case err := <-errc:
				return err
			case <-sig:
				return nil
			case <-cmd.Context().Done():
				return nil
			}
		},
	}
}

type dnsResult struct {
	server, load string
	qps          float64
	p50, p99     time.Duration // at a fixed rate, the same for both
	lost         float64
	rate         int
}

func dnsBench(ctx context.Context, out io.Writer, bin, coredns string, prom bool, d time.Duration, rounds int) error {
	if _, err := exec.LookPath("dnsperf"); err != nil {
		return fmt.Errorf("dnsperf: %w (apt-get install dnsperf, or make deps)", err)
	}
	dir, err := os.MkdirTemp("", "hepto-dns-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if coredns, err = buildCoreDNS(ctx, out, coredns, dir); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	l, err := lab.New(ctx, lab.Options{Logger: logger()})
	if err != nil {
		return err
	}
	defer l.Close()
	resolver, err := l.AddPublicHost("resolver")
	if err != nil {
		return err
	}
	if _, err := resolver.Start(ctx, filepath.Join(dir, "resolver.log"), self, "dns-resolver"); err != nil {
		return err
	}
	server, err := l.AddPublicHost("server")
	if err != nil {
		return err
	}
	// Three nodes, so that the zone has names to serve; the benchmark
	// queries the anchor's server on loopback, CoreDNS on another
	// loopback address of the same host.
	c := cluster.New(ctx, l, bin, filepath.Join(dir, "hepto"))
	a, err := c.Anchor("anchor", server, "--dns-upstream", resolver.IPv4.String())
	if err != nil {
		return err
	}
	names := []string{"anchor"}
	for _, n := range []string{"node-1", "node-2"} {
		h, err := l.AddPublicHost(n)
		if err != nil {
			return err
		}
		if _, err := c.Join(n, h, a); err != nil {
			return err
		}
		names = append(names, n)
	}
	var hosts strings.Builder
	if err := cluster.Eventually(60*time.Second, func() error {
		st, _, err := a.Status()
		if err != nil {
			return err
		}
		hosts.Reset()
		fmt.Fprintf(&hosts, "%s anchor.demo.internal\n%s anchor.demo.internal\n", st.OverlayIPs[0], st.OverlayIPs[1])
		for _, p := range st.Peers {
			fmt.Fprintf(&hosts, "%s %s.demo.internal\n%s %s.demo.internal\n", p.OverlayIPs[0], p.Name, p.OverlayIPs[1], p.Name)
		}
		if len(st.Peers) < len(names)-1 {
			return fmt.Errorf("anchor has %d peers", len(st.Peers))
		}
		return nil
	}); err != nil {
		return err
	}
	hostsFile := filepath.Join(dir, "hosts")
	corefile := filepath.Join(dir, "Corefile")
	// What a cluster's CoreDNS does (Kubernetes' default Corefile, with
	// hosts for the node names): errors, metrics, names, forward, cache.
	metrics := ""
	if prom {
		metrics = "\tprometheus 127.0.0.2:9153\n"
	}
	conf := fmt.Sprintf(".:53 {\n\tbind 127.0.0.2\n\terrors\n%s\thosts %s {\n\t\tfallthrough\n\t}\n\tforward . %s:53\n\tcache\n}\n", metrics, hostsFile, resolver.IPv4)
	if err := os.WriteFile(hostsFile, []byte(hosts.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(corefile, []byte(conf), 0o644); err != nil {
		return err
	}
	core, err := server.Start(ctx, filepath.Join(dir, "coredns.log"), coredns, "-conf", corefile)
	if err != nil {
		return err
	}

	// The loads: node names (A and AAAA), and 200 forwarded names, which
	// a first pass puts in both caches.
	var nodeQ, fwdQ strings.Builder
	for _, n := range names {
		fmt.Fprintf(&nodeQ, "%s.demo.internal A\n%s.demo.internal AAAA\n", n, n)
	}
	for i := range 200 {
		fmt.Fprintf(&fwdQ, "www%d.example A\n", i)
	}
	loads := []dnsLoad{{"node names", "nodes.txt"}, {"forwarded, cached", "forwarded.txt"}}
	for i, s := range []string{nodeQ.String(), fwdQ.String()} {
		if err := os.WriteFile(filepath.Join(dir, loads[i].file), []byte(s), 0o644); err != nil {
			return err
		}
	}
	servers := []dnsTarget{{"hepto", "127.0.0.1"}, {"CoreDNS", "127.0.0.2"}}
	for _, s := range servers {
		if err := cluster.Eventually(20*time.Second, func() error {
			_, err := dnsperf(ctx, server, s.addr, filepath.Join(dir, "forwarded.txt"), "-n", "1")
			return err
		}); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}

	results, err := dnsLoads(ctx, out, server, servers, loads, dir, d, rounds)
	if err != nil {
		return err
	}
	printDNSResults(out, results, "peak RSS MB", map[string]string{
		"hepto":   fmt.Sprintf("%.0f", peakRSS([]*lab.Proc{a.Proc})),
		"CoreDNS": fmt.Sprintf("%.0f", peakRSS([]*lab.Proc{core})),
	})
	return nil
}

// dnsTarget is a server under test: its name in the tables, its address.
type dnsTarget struct{ name, addr string }

// dnsLoad is a query file in dir, and its name in the tables.
type dnsLoad struct{ name, file string }

// dnsLoads runs each load against the servers, from h: throughput rounds,
// the servers alternated, then latency at a fixed rate, the same for all
// (half the lowest throughput of the load).
func dnsLoads(ctx context.Context, out io.Writer, h runner, servers []dnsTarget, loads []dnsLoad, dir string, d time.Duration, rounds int) ([]dnsResult, error) {
	var results []dnsResult
	for _, ld := range loads {
		file := filepath.Join(dir, ld.file)
		for r := range rounds {
			order := slices.Clone(servers)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, s := range order {
				fmt.Fprintf(out, "dnsperf %s, %s, round %d (load average %s) ...\n", s.name, ld.name, r+1, loadAvg())
				res, err := dnsRun(ctx, h, s.addr, file, d)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", s.name, err)
				}
				res.server, res.load = s.name, ld.name
				results = append(results, res)
			}
		}
	}
	for _, ld := range loads {
		low := 0.0
		for _, r := range results {
			if r.load == ld.name && (low == 0 || r.qps < low) {
				low = r.qps
			}
		}
		rate := int(low / 2)
		for _, s := range servers {
			fmt.Fprintf(out, "dnsperf %s, %s, %d queries/s ...\n", s.name, ld.name, rate)
			p50, p99, err := dnsLatency(ctx, h, s.addr, filepath.Join(dir, ld.file), rate, d)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			for i := range results {
				if results[i].server == s.name && results[i].load == ld.name {
					results[i].p50, results[i].p99, results[i].rate = p50, p99, rate
				}
			}
		}
	}
	return results, nil
}

// buildCoreDNS returns bin, or when it is empty a CoreDNS built from the
// module proxy into dir.
func buildCoreDNS(ctx context.Context, out io.Writer, bin, dir string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	fmt.Fprintf(out, "building CoreDNS (%s) ...\n", corednsModule)
	gobin := filepath.Join(dir, "bin")
	build := exec.CommandContext(ctx, "go", "install", corednsModule)
	build.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=", "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build CoreDNS: %w: %s", err, b)
	}
	return filepath.Join(gobin, "coredns"), nil
}

// runner runs a program to completion where the queries come from: a lab
// host, or a pod's network namespace.
type runner interface {
	Run(ctx context.Context, name string, args ...string) (string, error)
}

// dnsperf runs dnsperf on h against addr, with a load file and flags.
func dnsperf(ctx context.Context, h runner, addr, file string, flags ...string) (string, error) {
	return h.Run(ctx, "dnsperf", append([]string{"-s", addr, "-d", file, "-t", "2"}, flags...)...)
}

// dnsRun measures throughput: 4 clients, 100 queries outstanding each.
func dnsRun(ctx context.Context, h runner, addr, file string, d time.Duration) (dnsResult, error) {
	out, err := dnsperf(ctx, h, addr, file, "-l", strconv.Itoa(int(d.Seconds())), "-c", "4", "-q", "400")
	if err != nil {
		return dnsResult{}, err
	}
	var r dnsResult
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "  Queries per second:") && len(f) == 4:
			r.qps, _ = strconv.ParseFloat(f[3], 64)
		case strings.HasPrefix(line, "  Queries lost:") && len(f) >= 4:
			r.lost, _ = strconv.ParseFloat(strings.Trim(f[3], "(%)"), 64)
		}
	}
	if r.qps == 0 {
		return r, fmt.Errorf("dnsperf: no rate in %q", out)
	}
	return r, nil
}

// dnsLatency runs dnsperf at a fixed rate and reads every answer's
// latency: median and 99th percentile.
func dnsLatency(ctx context.Context, h runner, addr, file string, rate int, d time.Duration) (p50, p99 time.Duration, err error) {
	out, err := dnsperf(ctx, h, addr, file, "-l", strconv.Itoa(int(d.Seconds())), "-Q", strconv.Itoa(rate), "-v")
	if err != nil {
		return 0, 0, err
	}
	var lat []float64
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 5 && f[0] == ">" {
			if v, err := strconv.ParseFloat(f[4], 64); err == nil {
				lat = append(lat, v)
			}
		}
	}
	if len(lat) == 0 {
		return 0, 0, fmt.Errorf("dnsperf: no latencies")
	}
	slices.Sort(lat)
	at := func(q float64) time.Duration {
		return time.Duration(lat[min(len(lat)-1, int(q*float64(len(lat))))] * float64(time.Second))
	}
	return at(0.50), at(0.99), nil
}

// printDNSResults prints the runs of each server and load, with a memory
// column (mem by server, under memHeader).
func printDNSResults(out io.Writer, results []dnsResult, memHeader string, mem map[string]string) {
	best := map[string]float64{} // server+load: best of the rounds
	for _, r := range results {
		k := r.server + "\x00" + r.load
		best[k] = max(best[k], r.qps)
	}
	fmt.Fprintln(out)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "load\tserver\tqueries/s (runs)\t× CoreDNS\tlost %\tp50 µs\tp99 µs\tat queries/s\t"+memHeader+"\t")
	seen := map[string]bool{}
	for _, r := range results {
		k := r.server + "\x00" + r.load
		if seen[k] {
			continue
		}
		seen[k] = true
		var runs []string
		var lost float64
		for _, x := range results {
			if x.server == r.server && x.load == r.load {
				runs = append(runs, fmt.Sprintf("%.0f", x.qps))
				lost = max(lost, x.lost)
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%.2f\t%.2f\t%d\t%d\t%d\t%s\t\n", r.load, r.server, strings.Join(runs, ", "),
			best[k]/best["CoreDNS\x00"+r.load], lost, r.p50.Microseconds(), r.p99.Microseconds(), r.rate, mem[r.server])
	}
	w.Flush()
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/cni/netconf"
	"github.com/hepto-net/hepto/lab"
)

func cniBenchCmd() *cobra.Command {
	var pods, parallel, rounds int
	var path string
	cmd := &cobra.Command{
		Use:   "cni-bench",
		Short: "ADD and DEL latency of hepto-cni and of the reference bridge and host-local plugins, side by side",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var dirs []string
			for _, d := range filepath.SplitList(path) {
				abs, err := filepath.Abs(d)
				if err != nil {
					return err
				}
				dirs = append(dirs, abs)
			}
			return cniBench(cmd.Context(), cmd.OutOrStdout(), dirs, pods, parallel, rounds)
		},
	}
	exe, _ := os.Executable()
	dir := filepath.Dir(exe)
	cmd.Flags().StringVar(&path, "cni-path", dir+":"+filepath.Join(dir, "cni-ref"),
		"where the plugins are: hepto-cni, bridge, host-local (`make cni-ref` builds the reference ones)")
	cmd.Flags().IntVar(&pods, "pods", 100, "pods per run")
	cmd.Flags().IntVar(&parallel, "parallel", 8, "ADDs (and DELs) at a time in the parallel runs")
	cmd.Flags().IntVar(&rounds, "rounds", 3, "rounds; each runs every plugin, sequential and parallel, in turn")
	return cmd
}

// cniPlugin is one configuration under test.
type cniPlugin struct {
	name string
	rt   *lab.Runtime
	// samples per run mode ("sequential", "N at a time") and operation.
	add, del map[string][]time.Duration
}

func cniBench(ctx context.Context, out io.Writer, path []string, pods, parallel, rounds int) error {
	for _, p := range []string{netconf.Type, "bridge", "host-local"} {
		if _, err := lookPlugin(path, p); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "hepto-cni-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	l, err := lab.New(ctx, lab.Options{Logger: logger()})
	if err != nil {
		return err
	}
	defer l.Close()
	node, err := l.AddPublicHost("node")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "making %d pod namespaces ...\n", pods)
	ns := make([]*lab.Host, pods)
	for i := range ns {
		if ns[i], err = l.AddNamespace(fmt.Sprintf("pod%03d", i)); err != nil {
			return err
		}
	}

	// Both dual-stack, MTU 1400, no masquerade (hepto's is per node, not
	// per pod); addresses kept under dir.
	hepto, err := netconf.ConfList("hepto", netconf.DefaultMTU, filepath.Join(dir, "hepto"),
		[]netip.Prefix{netip.MustParsePrefix("10.78.1.0/24"), netip.MustParsePrefix("fd00:78:1::/64")})
	if err != nil {
		return err
	}
	ref, _ := json.Marshal(map[string]any{
		"cniVersion": "1.1.0",
		"name":       "reference",
		"plugins": []any{map[string]any{
			"type": "bridge", "bridge": "cni0", "isGateway": true, "mtu": netconf.DefaultMTU,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": filepath.Join(dir, "host-local"),
				"ranges":  [][]map[string]string{{{"subnet": "10.79.1.0/24"}}, {{"subnet": "fd00:79:1::/64"}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}, {"dst": "::/0"}},
			},
		}},
	})
	var plugins []*cniPlugin
	for _, c := range []struct {
		name string
		conf []byte
	}{{"hepto-cni", hepto}, {"bridge + host-local", ref}} {
		list, err := libcni.ConfListFromBytes(c.conf)
		if err != nil {
			return err
		}
		rt := lab.NewRuntime(node, list, path, filepath.Join(dir, "cache-"+list.Name))
		plugins = append(plugins, &cniPlugin{name: c.name, rt: rt, add: map[string][]time.Duration{}, del: map[string][]time.Duration{}})
	}
	// A first ADD and DEL each: the reference makes its bridge then, once;
	// and both binaries are in the page cache afterwards.
	for _, p := range plugins {
		a := lab.Attachment{ContainerID: "warm-up", Pod: ns[0]}
		if _, err := p.rt.Add(ctx, a); err != nil {
			return fmt.Errorf("%s: ADD: %w", p.name, err)
		}
		if err := p.rt.Del(ctx, a); err != nil {
			return fmt.Errorf("%s: DEL: %w", p.name, err)
		}
	}

	modes := []struct {
		name string
		n    int
	}{{"sequential", 1}, {fmt.Sprintf("%d at a time", parallel), parallel}}
	for r := range rounds {
		for _, m := range modes {
			// Alternate which plugin goes first: the machine's speed drifts.
			order := slices.Clone(plugins)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, p := range order {
				fmt.Fprintf(out, "round %d/%d: %s, %s ...\n", r+1, rounds, p.name, m.name)
				add, err := timeAll(ns, m.n, func(i int, h *lab.Host) error {
					_, err := p.rt.Add(ctx, lab.Attachment{ContainerID: fmt.Sprintf("r%d-%d", r, i), Pod: h})
					return err
				})
				if err != nil {
					return fmt.Errorf("%s: ADD: %w", p.name, err)
				}
				del, err := timeAll(ns, m.n, func(i int, h *lab.Host) error {
					return p.rt.Del(ctx, lab.Attachment{ContainerID: fmt.Sprintf("r%d-%d", r, i), Pod: h})
				})
				if err != nil {
					return fmt.Errorf("%s: DEL: %w", p.name, err)
				}
				p.add[m.name] = append(p.add[m.name], add...)
				p.del[m.name] = append(p.del[m.name], del...)
			}
		}
	}

	fmt.Fprintf(out, "\n%d pods × %d rounds, each pod an ADD then, once all are up, a DEL; milliseconds\n", pods, rounds)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "plugin\tmode\tADD median\tADD p99\tDEL median\tDEL p99\tADD median ×ref\t")
	for _, m := range modes {
		refMedian := quantile(plugins[1].add[m.name], 0.5)
		for _, p := range plugins {
			addMed := quantile(p.add[m.name], 0.5)
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t\n", p.name, m.name,
				ms(addMed), ms(quantile(p.add[m.name], 0.99)),
				ms(quantile(p.del[m.name], 0.5)), ms(quantile(p.del[m.name], 0.99)),
				float64(addMed)/float64(refMedian))
		}
	}
	return tw.Flush()
}

// timeAll runs f for each pod, n at a time, and returns how long each took.
func timeAll(pods []*lab.Host, n int, f func(int, *lab.Host) error) ([]time.Duration, error) {
	d := make([]time.Duration, len(pods))
	errs := make([]error, len(pods))
	next := make(chan int)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for i := range next {
				start := time.Now()
				errs[i] = f(i, pods[i])
				d[i] = time.Since(start)
			}
		})
	}
	for i := range pods {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return d, nil
}

// quantile is the nearest-rank q-quantile.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func lookPlugin(path []string, name string) (string, error) {
	for _, d := range path {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s in %s (make build cni-ref)", name, strings.Join(path, ":"))
}

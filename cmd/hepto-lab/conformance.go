package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/lab/cluster"
	"github.com/hepto-net/hepto/lab/registry"
)

// The taints' keys of k8s.ControlPlaneTaint and k8s.AnchorTaint.
const (
	controlPlaneTaint = "node-role.kubernetes.io/control-plane"
	anchorTaint       = "hepto.net/anchor"
)

// The conformance run: the upstream end-to-end suite (e2e.test, built from
// third_party/conformance at hepto's Kubernetes version) against a lab
// cluster of an anchor (the control plane) and two homes, one behind an
// endpoint-independent NAT and one behind a symmetric NAT, so that pods'
// traffic takes direct and relayed paths.

// Focus and skip of `make conformance`; `make conformance-full` drops the skip.
const (
	conformanceFocus = `\[sig-network\].*\[Conformance\]|\[sig-node\].*\[Conformance\]|\[sig-apps\].*\[Conformance\]|\[sig-api-machinery\].*\[Conformance\]`
	conformanceSkip  = `\[Serial\]|\[Disruptive\]|\[Slow\]`
)

// notHere are focused tests that cannot run in this lab, for a reason of
// the lab and not of hepto; each is skipped, reported with its reason, and
// its behaviour shown another way (docs/conformance.md).
// None today: the last one (busybox's read-only root) runs since the
// busybox image's ash keeps the environment names the suite gives.
var notHere []struct{ test, reason string }

// skipNotHere is skip with the notHere tests added.
func skipNotHere(skip string) string {
	parts := []string{}
	if skip != "" {
		parts = append(parts, skip)
	}
	for _, n := range notHere {
		parts = append(parts, regexp.QuoteMeta(n.test))
	}
	return strings.Join(parts, "|")
}

type conformanceOptions struct {
	bin, e2e, ginkgo, images string
	kubectl                  string
	focus, skip              string
	procs                    int
	timeout                  time.Duration
	report, doc, kind        string
	keep                     bool
	controlPlanes            int
	suiteArgs                []string
}

func conformanceCmd() *cobra.Command {
	var o conformanceOptions
	cmd := &cobra.Command{
		Use:   "conformance",
		Short: "The upstream Kubernetes end-to-end suite against a lab cluster of homes behind NATs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := heptoBin(cmd)
			if err != nil {
				return err
			}
			o.bin = bin
			return conformance(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.e2e, "e2e-test", "bin/conformance/e2e.test", "the suite (make conformance builds it)")
	f.StringVar(&o.ginkgo, "ginkgo", "bin/conformance/ginkgo", "ginkgo, to run the suite in parallel (empty: e2e.test alone, serial)")
	f.StringVar(&o.kubectl, "kubectl", "bin/conformance/kubectl", "the kubectl the suite runs, a stock one (missing: hepto kubectl)")
	f.StringVar(&o.images, "images", "bin/e2e-images", "directory of the suite's image archives, imported into every node")
	f.StringVar(&o.focus, "focus", conformanceFocus, "tests to run (regular expression on their names)")
	f.StringVar(&o.skip, "skip", conformanceSkip, "tests not to run")
	f.IntVar(&o.procs, "procs", 4, "tests run at once (ginkgo processes)")
	f.DurationVar(&o.timeout, "timeout", 3*time.Hour, "the suite's time limit")
	f.StringVar(&o.report, "report", "bin/conformance/report", "where the JUnit report and the suite's log go")
	f.StringVar(&o.doc, "doc", "", "markdown file whose results section gets the summary (docs/conformance.md)")
	f.StringVar(&o.kind, "kind", "", "the document's results section (default: make conformance, or make conformance-full without the skip)")
	f.BoolVar(&o.keep, "keep", false, "keep the nodes' directories (logs) and print where")
	f.StringArrayVar(&o.suiteArgs, "suite-arg", nil, "a further flag for e2e.test (as --suite-arg=--storage.testdriver=FILE)")
	f.IntVar(&o.controlPlanes, "control-planes", 1, "control-plane nodes: 1 (the anchor) or 3 (the anchor and both homes)")
	return cmd
}

func conformance(ctx context.Context, out io.Writer, o conformanceOptions) error {
	for _, p := range []*string{&o.e2e, &o.ginkgo, &o.kubectl, &o.images, &o.report} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	if o.controlPlanes != 1 && o.controlPlanes != 3 {
		return fmt.Errorf("--control-planes %d: 1 or 3", o.controlPlanes)
	}
	if _, err := os.Stat(o.e2e); err != nil {
		return fmt.Errorf("e2e.test: %w (make conformance builds it)", err)
	}
	archives, err := filepath.Glob(filepath.Join(o.images, "*.tar"))
	if err != nil || len(archives) == 0 {
		return fmt.Errorf("no image archives in %s (make e2e-images builds them)", o.images)
	}
	if err := os.MkdirAll(o.report, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "hepto-conformance-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(out, "nodes' directories:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	l, err := lab.New(ctx, lab.Options{Logger: logger()})
	if err != nil {
		return err
	}
	defer l.Close()
	c := cluster.New(ctx, l, o.bin, dir)
	c.Kubernetes, c.Images = true, archives
	defer c.RemovePods()

	step := func(format string, a ...any) { fmt.Fprintf(out, "==> "+format+"\n", a...) }
	roles := "anchor (control plane)"
	if o.controlPlanes == 3 {
		roles = "anchor, home-a and home-b all control-plane nodes"
	}
	step("lab cluster: anchor, home-a (endpoint-independent NAT), home-b (symmetric NAT), %s; %d image archives", roles, len(archives))
	pub, err := l.AddPublicHost("anchor")
	if err != nil {
		return err
	}
	// A registry on the anchor's host, the nodes' mirror of the suite's
	// registries: tests that pull (policy Always) get the same images.
	mirror, stopRegistry, err := serveRegistry(pub, archives)
	if err != nil {
		return err
	}
	defer stopRegistry()
	c.Mirrors = map[string]string{}
	for _, host := range []string{"registry.k8s.io", "docker.io"} {
		c.Mirrors[host] = registry.HostsTOML(host, mirror)
	}
	anchor, err := c.Anchor("anchor", pub)
	if err != nil {
		return err
	}
	nodes := []*cluster.Node{anchor}
	for _, h := range []struct {
		name string
		nat  lab.NAT
	}{{"home-a", lab.EIM}, {"home-b", lab.Symmetric}} {
		home, err := l.AddHome(h.name, lab.HomeOptions{NAT: h.nat})
		if err != nil {
			return err
		}
		var tokenFlags []string
		if o.controlPlanes == 3 {
			tokenFlags = []string{"--control-plane"}
		}
		tok, err := anchor.Token(h.name, tokenFlags...)
		if err != nil {
			return err
		}
		n, err := c.JoinWith(h.name, home.Machines[0], tok)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
	}
	if err := kubeReady(nodes, 5*time.Minute); err != nil {
		return err
	}
	step("every node Ready")
	if o.controlPlanes == 3 {
		// Every node is a control-plane node: its administrator takes the
		// homes' taints off, or no pod would run.
		for _, n := range nodes[1:] {
			if _, err := anchor.Hepto("kubectl", "taint", "nodes", n.Name, controlPlaneTaint+":NoSchedule-"); err != nil {
				return fmt.Errorf("untaint %s: %w", n.Name, err)
			}
		}
		step("home-a and home-b untainted: the pods' nodes")
	}

	kc, err := anchor.Hepto("kubeconfig")
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "admin.conf")
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		return err
	}
	// The suite runs kubectl: a stock one, as users' tools would be, or
	// else hepto's (with the suite's --kubeconfig).
	kubectlPath := o.kubectl
	if _, err := os.Stat(kubectlPath); err != nil {
		kubectlPath = filepath.Join(dir, "kubectl")
		script := fmt.Sprintf("#!/bin/sh\nexec %s kubectl --state %s \"$@\"\n", o.bin, anchor.State)
		if err := os.WriteFile(kubectlPath, []byte(script), 0o755); err != nil {
			return err
		}
	}

	mem := &peakMemory{}
	memCtx, stopMem := context.WithCancel(ctx)
	defer stopMem()
	var wg sync.WaitGroup
	wg.Go(func() { mem.sample(memCtx, nodes, 5*time.Second) })

	suiteArgs := []string{
		"--kubeconfig=" + kubeconfig,
		"--provider=skeleton",
		"--kubectl-path=" + kubectlPath,
		"--report-dir=" + o.report,
		"--e2e-output-dir=" + filepath.Join(dir, "e2e-output"),
		// The anchor's and control-plane nodes' taints: the suite runs
		// its pods on the other nodes, as tenants' run.
		"--non-blocking-taints=" + controlPlaneTaint + "," + anchorTaint,
	}
	suiteArgs = append(suiteArgs, o.suiteArgs...)
	var argv []string
	if o.ginkgo != "" {
		argv = append([]string{o.ginkgo, "--procs", fmt.Sprint(o.procs), "--timeout", o.timeout.String(),
			"--focus", o.focus, "--skip", skipNotHere(o.skip), "--no-color", "--output-dir", o.report, "--junit-report", "junit.xml",
			o.e2e, "--"}, suiteArgs...)
	} else {
		argv = append([]string{o.e2e, "--ginkgo.focus=" + o.focus, "--ginkgo.skip=" + skipNotHere(o.skip), "--ginkgo.no-color",
			"--ginkgo.timeout=" + o.timeout.String(), "--ginkgo.junit-report=" + filepath.Join(o.report, "junit.xml")}, suiteArgs...)
	}
	logPath := filepath.Join(o.report, "e2e.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	step("the suite, in the anchor's network namespace (log: %s)", logPath)
	start := time.Now()
	run := pub.Command(ctx, argv[0], argv[1:]...)
	run.Dir = dir
	progress := tail(out)
	run.Stdout, run.Stderr = io.MultiWriter(logFile, progress), logFile
	runErr := run.Run()
	progress.Close()
	wall := time.Since(start)
	stopMem()
	wg.Wait()
	step("suite done in %s (%v)", wall.Round(time.Second), runErr)

	res, err := readJUnit(filepath.Join(o.report, "junit.xml"), o.focus, o.skip)
	if err != nil {
		return fmt.Errorf("the suite's report: %w (suite: %v)", err, runErr)
	}
	summary := res.markdown(conformanceRun{
		date: time.Now().UTC(), wall: wall, peak: mem.peak(), perNode: mem.perNode(), procs: o.procs,
		focus: o.focus, skip: o.skip, load: loadAvg(),
	})
	fmt.Fprintln(out, summary)
	if o.doc != "" {
		kind := o.kind
		if kind == "" {
			kind = runKind(o.skip)
		}
		if err := writeResults(o.doc, kind, summary); err != nil {
			return err
		}
		step("results written to %s", o.doc)
	}
	if len(res.failed) > 0 {
		return fmt.Errorf("%d of %d tests failed", len(res.failed), res.ran())
	}
	return nil
}

// serveRegistry serves the archives' images from h, port 5000, until
// stop; it returns the registry's URL.
func serveRegistry(h *lab.Host, archives []string) (url string, stop func(), err error) {
	r := registry.New(logger())
	for _, a := range archives {
		if _, err := r.Add(a); err != nil {
			r.Close()
			return "", nil, err
		}
	}
	addr := netip.AddrPortFrom(h.IPv4, 5000).String()
	ln, err := h.Listen("tcp", addr)
	if err != nil {
		r.Close()
		return "", nil, err
	}
	return "http://" + addr, r.Serve(ln), nil
}

// tail passes the suite's lines that say how it goes (results, failures)
// to out, until closed.
func tail(out io.Writer) io.WriteCloser {
	pr, pw := io.Pipe()
	go func() {
		buf := make([]byte, 64<<10)
		var line []byte
		for {
			n, err := pr.Read(buf)
			for _, b := range buf[:n] {
				if b != '\n' {
					line = append(line, b)
					continue
				}
				s := string(line)
				if strings.HasPrefix(s, "•") || strings.Contains(s, "[FAIL]") || strings.HasPrefix(s, "Ran ") ||
					strings.HasPrefix(s, "FAIL!") || strings.HasPrefix(s, "SUCCESS!") || strings.HasPrefix(s, "Summarizing") {
					fmt.Fprintln(out, s)
				}
				line = line[:0]
			}
			if err != nil {
				return
			}
		}
	}()
	return pw
}

// peakMemory samples the cluster's memory: every node's hepto and its
// children, containerd and its shims (not the pods' own processes).
type peakMemory struct {
	mu    sync.Mutex
	max   float64
	nodes map[string]float64
}

func (m *peakMemory) sample(ctx context.Context, nodes []*cluster.Node, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var total float64
		per := map[string]float64{}
		for _, n := range nodes {
			if n.Proc == nil {
				continue
			}
			sock := filepath.Join(n.State, "kubernetes", "containerd", "containerd.sock")
			for _, p := range nodeProcs(map[string]int{"hepto": n.Proc.Pid()}, sock) {
				rss, _ := procMemory(p.pid)
				per[n.Name] += rss
				total += rss
			}
		}
		m.mu.Lock()
		if total > m.max {
			m.max = total
		}
		if m.nodes == nil {
			m.nodes = map[string]float64{}
		}
		for k, v := range per {
			m.nodes[k] = max(m.nodes[k], v)
		}
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *peakMemory) peak() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.max
}

func (m *peakMemory) perNode() map[string]float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.nodes)
}

// runKind names the results section of a run by its skip.
func runKind(skip string) string {
	switch skip {
	case conformanceSkip:
		return "make conformance"
	case "":
		return "make conformance-full"
	}
	return "skip " + skip
}

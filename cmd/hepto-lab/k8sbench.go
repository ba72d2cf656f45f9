package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/k8s/images"
	"github.com/hepto-net/hepto/k8s/pki"
	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/lab/cluster"
)

// The Kubernetes benchmark: an anchor (control plane) and a home behind
// an endpoint-independent NAT (worker), once with hepto's Kubernetes and
// once with the upstream components on the same fabric.

type k8sBenchOptions struct {
	bin, ref, webSrc string
	only             string // "hepto" or "upstream": that run alone
	pods, starts     int
	settle, window   time.Duration
	keep             bool
}

func k8sBenchCmd() *cobra.Command {
	var o k8sBenchOptions
	cmd := &cobra.Command{
		Use:   "k8s-bench",
		Short: "hepto's Kubernetes against the upstream components on the same lab nodes: memory, time to Ready, pod start, idle CPU",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.bin, err = heptoBin(cmd); err != nil {
				return err
			}
			return k8sBench(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	exe, _ := os.Executable()
	cmd.Flags().StringVar(&o.ref, "ref", filepath.Join(filepath.Dir(exe), "k8s-ref"),
		"where the upstream etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy are (`make k8s-ref` builds them)")
	cmd.Flags().StringVar(&o.webSrc, "web", "./lab/web", "the test image's program, a Go package built for the run")
	cmd.Flags().IntVar(&o.pods, "pods", 10, "pods on the worker while idle")
	cmd.Flags().IntVar(&o.starts, "starts", 20, "pods timed from create to Running, one after another")
	cmd.Flags().DurationVar(&o.settle, "settle", time.Minute, "idle time once the pods run, before counting")
	cmd.Flags().DurationVar(&o.window, "window", time.Minute, "how long idle CPU is counted")
	cmd.Flags().StringVar(&o.only, "only", "", "run one side alone: hepto or upstream (no comparison then)")
	cmd.Flags().BoolVar(&o.keep, "keep", false, "keep the runs' directories (logs) and print where")
	return cmd
}

const benchImage = "hepto.bench/web:1"

// refComponents are the upstream binaries `make k8s-ref` builds.
var refComponents = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"}

// Roles of the two nodes.
const (
	roleCP     = "control-plane node"
	roleWorker = "worker"
)

// part is one component of a node: its processes' memory and CPU.
type part struct {
	name     string
	procs    int
	rss, pss float64 // MB
	cpu      float64 // % of one core over the window
}

type k8sResult struct {
	name   string
	ready  time.Duration
	starts []time.Duration
	parts  map[string][]part // role → components
}

func (r *k8sResult) total(role string) part {
	var t part
	for _, p := range r.parts[role] {
		t.procs += p.procs
		t.rss += p.rss
		t.pss += p.pss
		t.cpu += p.cpu
	}
	return t
}

func k8sBench(ctx context.Context, out io.Writer, o k8sBenchOptions) error {
	for _, c := range refComponents {
		if o.only == "hepto" {
			break // the upstream side does not run
		}
		if _, err := os.Stat(filepath.Join(o.ref, c)); err != nil {
			return fmt.Errorf("upstream %s: %w (run `make k8s-ref`)", c, err)
		}
	}
	tmp, err := os.MkdirTemp("", "hepto-k8sbench-images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	archives, err := benchArchives(tmp, o.webSrc)
	if err != nil {
		return err
	}
	var results []*k8sResult
	for _, upstream := range []bool{false, true} {
		if o.only != "" && (o.only == "upstream") != upstream {
			continue
		}
		r, err := k8sRun(ctx, out, o, upstream, archives)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	if len(results) == 1 {
		return printParts(out, o, results[0])
	}
	return printK8s(out, o, results[0], results[1])
}

// benchArchives builds the test image's program and writes two archives:
// the pause image (what hepto imports at start) and the test image.
func benchArchives(dir, src string) ([]string, error) {
	prog := filepath.Join(dir, "web")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", prog, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s (run from the repository): %w: %s", src, err, b)
	}
	data, err := os.ReadFile(prog)
	if err != nil {
		return nil, err
	}
	var out []string
	for name, img := range map[string]images.Image{
		"pause.tar": images.PauseImage(runtime.GOARCH),
		"web.tar": {Name: benchImage, Arch: runtime.GOARCH, Entrypoint: []string{"/web"}, Cmd: []string{"serve"},
			Files: []images.File{{Path: "/web", Mode: 0o755, Data: data}}},
	} {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			return nil, err
		}
		err = images.WriteArchive(f, img)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	slices.Sort(out) // pause.tar, web.tar
	return out, nil
}

// k8sRun runs one side: hepto's Kubernetes, or the upstream components on
// hepto's fabric. It leaves nothing behind: processes, mounts, cgroups.
func k8sRun(ctx context.Context, out io.Writer, o k8sBenchOptions, upstream bool, archives []string) (res *k8sResult, err error) {
	name := "hepto"
	if upstream {
		name = "upstream"
	}
	res = &k8sResult{name: name, parts: map[string][]part{}}
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "%s: %s\n", name, fmt.Sprintf(format, args...))
	}
	l, err := lab.New(ctx, lab.Options{Logger: logger(), Shaping: lab.ShapeNone})
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hepto-k8sbench-")
	if err != nil {
		l.Close()
		return nil, err
	}
	c := cluster.New(ctx, l, o.bin, dir)
	c.Kubernetes = !upstream
	var ref *refCluster
	var an, w *cluster.Node
	defer func() {
		if ref != nil {
			ref.stop()
		}
		for _, n := range []*cluster.Node{w, an} {
			if n != nil && n.Proc != nil {
				n.Stop(syscall.SIGTERM)
			}
		}
		if rerr := c.RemovePods(); rerr != nil && err == nil {
			err = fmt.Errorf("clean up: %w", rerr)
		}
		l.Close()
		if o.keep || err != nil {
			say("files and logs kept in %s", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()

	pub, err := l.AddPublicHost("anchor")
	if err != nil {
		return nil, err
	}
	home, err := l.AddHome("home", lab.HomeOptions{NAT: lab.EIM})
	if err != nil {
		return nil, err
	}
	say("starting the control-plane node")
	an, err = c.Anchor("anchor", pub)
	if err != nil {
		return nil, err
	}
	var kc *kubeClient
	var cpNode *refNode
	if upstream {
		ips, err := overlayIPs(an)
		if err != nil {
			return nil, err
		}
		p, err := pki.LoadOrCreate(filepath.Join(dir, "ref", "pki"))
		if err != nil {
			return nil, err
		}
		ref = &refCluster{ctx: ctx, bin: o.ref, dir: filepath.Join(dir, "ref"), pki: p, svc: serviceCIDRs(ips[1]),
			cpURL: "https://" + netip.AddrPortFrom(ips[0], 6443).String(), images: archives[:1]}
		ref.pods, ref.overlay = podsAndOverlay(ips[1])
		if kc, err = newKubeClient(pub, p); err != nil {
			return nil, err
		}
		cpNode = ref.add(an, ips)
		if err := ref.startControlPlane(cpNode, kc); err != nil {
			return nil, err
		}
		if err := ref.startNode(cpNode); err != nil {
			return nil, err
		}
	} else {
		// The control plane makes its CAs, then the admin kubeconfig.
		kroot := filepath.Join(an.State, "kubernetes")
		if err := cluster.Eventually(time.Minute, func() error {
			_, err := os.Stat(filepath.Join(kroot, "kubeconfig", "admin.conf"))
			return err
		}); err != nil {
			return nil, err
		}
		p, err := pki.LoadOrCreate(filepath.Join(kroot, "pki"))
		if err != nil {
			return nil, err
		}
		if kc, err = newKubeClient(pub, p); err != nil {
			return nil, err
		}
	}
	if err := kc.waitReady(ctx, "anchor", 3*time.Minute); err != nil {
		return nil, fmt.Errorf("control-plane node: %w", err)
	}
	say("control-plane node Ready; joining the worker")

	tok, err := an.Token("home")
	if err != nil {
		return nil, err
	}
	w = c.Node("home", home.Machines[0])
	var wNode *refNode
	start := time.Now()
	if err := w.Start("--join", tok); err != nil {
		return nil, err
	}
	if upstream {
		// The kubelet serves on the overlay address: it starts once the
		// node has one.
		if err := poll(time.Minute, 100*time.Millisecond, func() error {
			_, err := os.Stat(filepath.Join(w.State, "hepto.sock"))
			return err
		}); err != nil {
			return nil, err
		}
		ips, err := overlayIPs(w)
		if err != nil {
			return nil, err
		}
		wNode = ref.add(w, ips)
		if err := ref.startNode(wNode); err != nil {
			return nil, err
		}
	}
	if err := kc.waitReady(ctx, "home", 3*time.Minute); err != nil {
		if upstream {
			err = errors.Join(err, wNode.exited())
		}
		return nil, fmt.Errorf("worker: %w", err)
	}
	res.ready = time.Since(start)
	say("worker Ready %.1fs after its `hepto run --join` started", res.ready.Seconds())

	// The test image, present before the pods.
	if upstream {
		err = ctr(ctx, wNode.sock, "images", "import", "--snapshotter", "overlayfs", archives[1])
	} else {
		_, err = w.Hepto("images", "import", archives[1])
	}
	if err != nil {
		return nil, err
	}
	// The namespace's service account, made by the controller manager.
	if err := cluster.Eventually(time.Minute, func() error {
		return kc.do(ctx, "GET", "/api/v1/namespaces/default/serviceaccounts/default", nil, nil)
	}); err != nil {
		return nil, err
	}
	var names []string
	for i := range o.pods {
		name := fmt.Sprintf("idle-%02d", i)
		if err := kc.createPod(ctx, podSpec(name, benchImage, "home")); err != nil {
			return nil, err
		}
		names = append(names, name)
	}
	if err := kc.waitPodsRunning(ctx, names, 3*time.Minute); err != nil {
		return nil, err
	}
	say("%d pods Running on the worker; idle for %s, then CPU counted for %s (load average %s)", o.pods, o.settle, o.window, loadAvg())
	if err := sleepCtx(ctx, o.settle); err != nil {
		return nil, err
	}

	// The processes counted on each node.
	type counted struct {
		role  string
		roots map[string]int
		sock  string
	}
	var nodes []counted
	if upstream {
		for _, n := range []*refNode{cpNode, wNode} {
			roots := map[string]int{"hepto (fabric only)": n.node.Proc.Pid()}
			for comp, p := range n.procs {
				roots[comp] = p.Pid()
			}
			role := roleWorker
			if n == cpNode {
				role = roleCP
			}
			nodes = append(nodes, counted{role, roots, n.sock})
		}
	} else {
		for _, n := range []*cluster.Node{an, w} {
			role := roleWorker
			if n == an {
				role = roleCP
			}
			sock := filepath.Join(n.State, "kubernetes", "containerd", "containerd.sock")
			nodes = append(nodes, counted{role, map[string]int{"hepto": n.Proc.Pid()}, sock})
		}
	}
	before := map[int]float64{}
	for _, n := range nodes {
		for _, p := range nodeProcs(n.roots, n.sock) {
			before[p.pid] = p.ticks
		}
	}
	if err := sleepCtx(ctx, o.window); err != nil {
		return nil, err
	}
	for _, n := range nodes {
		byName := map[string]*part{}
		var order []string
		for _, p := range nodeProcs(n.roots, n.sock) {
			pt := byName[p.label]
			if pt == nil {
				pt = &part{name: p.label}
				byName[p.label] = pt
				order = append(order, p.label)
			}
			rss, pss := procMemory(p.pid)
			pt.procs++
			pt.rss += rss
			pt.pss += pss
			pt.cpu += (p.ticks - before[p.pid]) / 100 / o.window.Seconds() * 100 // USER_HZ
		}
		slices.SortStableFunc(order, func(a, b string) int { return partRank(a) - partRank(b) })
		for _, name := range order {
			res.parts[n.role] = append(res.parts[n.role], *byName[name])
		}
	}

	if !upstream {
		// What hepto says of its components: all should run.
		for _, n := range []*cluster.Node{an, w} {
			st, _, err := n.Status()
			if err != nil {
				return nil, err
			}
			var comps []string
			for name, state := range st.Kubernetes.Components {
				comps = append(comps, name+" "+state)
			}
			slices.Sort(comps)
			say("%s: %s", n.Name, strings.Join(comps, ", "))
		}
	}
	say("timing %d pods from create to Running, one after another (load average %s)", o.starts, loadAvg())
	for i := range o.starts {
		d, err := kc.timePod(ctx, podSpec(fmt.Sprintf("start-%02d", i), benchImage, "home"), 2*time.Minute)
		if err != nil {
			return nil, err
		}
		res.starts = append(res.starts, d)
	}
	return res, nil
}

// partRank orders a node's components as the tables show them.
func partRank(name string) int {
	for i, n := range []string{"hepto", "hepto (fabric only)", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "containerd", "shims"} {
		if n == name {
			return i
		}
	}
	return 100
}

// loadAvg is the machine's load average over 1, 5 and 15 minutes: other
// work on the machine shows there.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// proc is one counted process: its component and its CPU ticks so far.
type proc struct {
	pid   int
	label string
	ticks float64
}

type procStat struct {
	ppid  int
	comm  string
	ticks float64 // utime + stime + cutime + cstime
}

// readProcStat reads /proc/PID/stat.
func readProcStat(pid int) (procStat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, false
	}
	f := strings.Fields(s[end+2:])
	if len(f) < 15 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	// The children it has waited for count too: the CNI plugins that
	// containerd runs (STATUS every 5 s), kube-proxy's nft.
	var ticks float64
	for _, i := range []int{11, 12, 13, 14} {
		t, _ := strconv.ParseFloat(f[i], 64)
		ticks += t
	}
	return procStat{ppid: ppid, comm: s[open+1 : end], ticks: ticks}, true
}

// shimComm is containerd-shim-runc-v2's command name, as the kernel cuts it.
const shimComm = "containerd-shim"

// nodeProcs are a node's processes: the roots (label → pid) and their
// descendants, and the shims of the node's containerd (found by its
// socket: they are nobody's children once started). The pods' own
// processes are not counted.
func nodeProcs(roots map[string]int, sock string) []proc {
	entries, _ := os.ReadDir("/proc")
	all := map[int]procStat{}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readProcStat(pid); ok {
			all[pid] = st
			children[st.ppid] = append(children[st.ppid], pid)
		}
	}
	var out []proc
	seen := map[int]bool{}
	var walk func(pid int, label string)
	walk = func(pid int, label string) {
		st, ok := all[pid]
		if !ok || seen[pid] || st.comm == shimComm {
			return
		}
		seen[pid] = true
		if st.comm == "containerd" {
			label = "containerd"
		}
		out = append(out, proc{pid: pid, label: label, ticks: st.ticks})
		for _, c := range children[pid] {
			walk(c, label)
		}
	}
	for label, pid := range roots {
		walk(pid, label)
	}
	for pid, st := range all {
		if st.comm != shimComm || seen[pid] {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(b), "\x00")
		if i := slices.Index(args, "-address"); i >= 0 && i+1 < len(args) && args[i+1] == sock {
			seen[pid] = true
			out = append(out, proc{pid: pid, label: "shims", ticks: st.ticks})
		}
	}
	return out
}

// procMemory is a process's RSS (VmRSS) and PSS (smaps_rollup), in MB.
func procMemory(pid int) (rss, pss float64) {
	return procField(pid, "status", "VmRSS"), procField(pid, "smaps_rollup", "Pss")
}

// procField is a "Name: N kB" field of /proc/PID/FILE, in MB; 0 if missing.
func procField(pid int, file, name string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

func durationStats(ds []time.Duration) (med, lo, hi time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return medianDuration(s), s[0], s[len(s)-1]
}

func fileMB(path string) float64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return float64(fi.Size()) / 1e6
}

// printParts prints a run's components, their memory and CPU, and its
// times.
func printParts(out io.Writer, o k8sBenchOptions, r *k8sResult) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(out, "\n%s, idle with %d pods on the worker (CPU over %s):\n", r.name, o.pods, o.window)
	fmt.Fprintf(w, "node\tcomponent\tprocesses\tRSS MB\tPSS MB\tCPU %% of a core\n")
	for _, role := range []string{roleCP, roleWorker} {
		for _, p := range r.parts[role] {
			fmt.Fprintf(w, "%s\t%s\t%d\t%.0f\t%.0f\t%.2f\n", role, p.name, p.procs, p.rss, p.pss, p.cpu)
		}
		t := r.total(role)
		fmt.Fprintf(w, "%s\ttotal\t%d\t%.0f\t%.0f\t%.2f\n", role, t.procs, t.rss, t.pss, t.cpu)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	med, lo, hi := durationStats(r.starts)
	fmt.Fprintf(out, "worker Ready %.1fs after `hepto run --join`; pod create → Running median %.2fs (%.2f–%.2f, %d pods)\n",
		r.ready.Seconds(), med.Seconds(), lo.Seconds(), hi.Seconds(), len(r.starts))
	return nil
}

func printK8s(out io.Writer, o k8sBenchOptions, h, u *k8sResult) error {
	for _, r := range []*k8sResult{h, u} {
		if err := printParts(out, o, r); err != nil {
			return err
		}
	}

	hm, hlo, hhi := durationStats(h.starts)
	um, ulo, uhi := durationStats(u.starts)
	var refMB float64
	for _, c := range refComponents {
		refMB += fileMB(filepath.Join(o.ref, c))
	}
	heptoMB := fileMB(o.bin)
	met := func(v, target float64) string {
		if v <= target {
			return "met"
		}
		return "MISSED"
	}
	type row struct {
		metric     string
		hepto, ref float64
		format     string
		target     string
	}
	hcp, ucp, hw, uw := h.total(roleCP), u.total(roleCP), h.total(roleWorker), u.total(roleWorker)
	rows := []row{
		{"control-plane node RSS MB", hcp.rss, ucp.rss, "%.0f", "≤ 600: " + met(hcp.rss, 600)},
		{"control-plane node PSS MB", hcp.pss, ucp.pss, "%.0f", ""},
		{"worker RSS MB", hw.rss, uw.rss, "%.0f", "≤ 250: " + met(hw.rss, 250)},
		{"worker PSS MB", hw.pss, uw.pss, "%.0f", ""},
		{"`run --join` → node Ready s", h.ready.Seconds(), u.ready.Seconds(), "%.1f", "≤ 60: " + met(h.ready.Seconds(), 60)},
		{fmt.Sprintf("pod create → Running s, median of %d", len(h.starts)), hm.Seconds(), um.Seconds(), "%.2f", "≤ 3: " + met(hm.Seconds(), 3)},
		{"idle CPU, worker, % of a core", hw.cpu, uw.cpu, "%.2f", "≤ 3: " + met(hw.cpu, 3)},
		{"idle CPU, control-plane node, % of a core", hcp.cpu, ucp.cpu, "%.2f", ""},
		{"binaries MB (hepto; etcd + kube-*)", heptoMB, refMB, "%.1f", "≤ 150: " + met(heptoMB, 150)},
	}
	fmt.Fprintf(out, "\nhepto against the upstream components (containerd and its shims in both):\n")
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "metric\thepto\tupstream\thepto ÷ upstream\ttarget (hepto)\n")
	for _, r := range rows {
		ratio := "-"
		if r.ref > 0 {
			ratio = fmt.Sprintf("%.2f", r.hepto/r.ref)
		}
		fmt.Fprintf(w, "%s\t"+r.format+"\t"+r.format+"\t%s\t%s\n", r.metric, r.hepto, r.ref, ratio, r.target)
	}
	fmt.Fprintf(w, "pod create → Running s, min–max\t%.2f–%.2f\t%.2f–%.2f\t\t\n", hlo.Seconds(), hhi.Seconds(), ulo.Seconds(), uhi.Seconds())
	return w.Flush()
}

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepto-net/hepto/localapi"
)

// TestControlPlaneOverHomes: the anchor and two homes (one behind a
// symmetric NAT, relayed through an anchor) run the control plane; a
// second anchor relays when the first is gone. etcd has three voting members
// with one leader; the controller-manager runs on one node, on standby on
// the others. Writers on every node record each acknowledged write; hepto
// on the etcd leader is killed (SIGKILL): the API is writable again from
// the other two within 15 s, and no acknowledged write is lost. The
// killed node comes back into etcd by itself. With one member down, the
// removal of another is refused, saying why.
func TestControlPlaneOverHomes(t *testing.T) {
	k := startKube(t, kubeOptions{controlPlanes: true, secondAnchor: true})
	nodes := []*node{k.an, k.a, k.b}
	names := []string{"anchor", "home-a", "home-b"}

	start := time.Now()
	eventually(t, 3*time.Minute, func() error { return etcdSettled(nodes, names) })
	t.Logf("etcd: three voting members agreeing on a leader %s after every node was Ready", time.Since(start).Round(time.Second))
	eventually(t, time.Minute, func() error {
		leading := 0
		for _, n := range nodes {
			st, _, err := n.status()
			if err != nil {
				return err
			}
			if st.Kubernetes.APIServer == nil || st.Kubernetes.APIServer.Target == "" {
				return fmt.Errorf("%s: the node-local apiserver endpoint has no target: %+v", n.Name, st.Kubernetes.APIServer)
			}
			switch c := st.Kubernetes.Components["kube-controller-manager"]; c {
			case "running":
				leading++
			case "standby":
			default:
				return fmt.Errorf("%s: kube-controller-manager %q, want running or standby", n.Name, c)
			}
		}
		if leading != 1 {
			return fmt.Errorf("kube-controller-manager runs on %d nodes, want 1", leading)
		}
		return nil
	})

	// At rest: a control-plane home's memory, and its overlay traffic
	// (WireGuard's bytes to and from every peer) over a minute.
	byPort := portAccounting(t, k.a, "2380", "6443", "51821", "10250")
	rx0, tx0 := overlayBytes(t, k.a)
	time.Sleep(time.Minute)
	rx1, tx1 := overlayBytes(t, k.a)
	t.Logf("home-a (control plane) at rest: %.1f kB/min in, %.1f kB/min out on the overlay; by TCP port, in/out: %s", float64(rx1-rx0)/1000, float64(tx1-tx0)/1000, byPort())
	for _, n := range nodes {
		rss, hwm := memoryMB(t, n)
		t.Logf("%s: hepto's RSS %.0f MB (peak %.0f MB)", n.Name, rss, hwm)
	}

	// Writers: one per node, a ConfigMap per write, each acknowledged
	// one recorded.
	wr := startWriters(k.w.ctx, nodes...)
	defer wr.stop()
	time.Sleep(5 * time.Second)

	leaderName := mustStatus(t, k.an).Kubernetes.ControlPlane.Leader
	var leader *node
	var rest []*node
	for _, n := range nodes {
		if n.Name == leaderName {
			leader = n
		} else {
			rest = append(rest, n)
		}
	}
	if leader == nil {
		t.Fatalf("etcd leader %q is none of the nodes", leaderName)
	}
	killed := time.Now()
	leader.stop(syscall.SIGKILL)
	t.Logf("hepto on the etcd leader, %s, killed", leader.Name)
	time.Sleep(25 * time.Second)
	for _, n := range rest {
		gap := wr.gap(n.Name, killed)
		t.Logf("writes from %s: none acknowledged for %s around the kill", n.Name, gap.Round(100*time.Millisecond))
		if gap > 15*time.Second {
			t.Errorf("writes from %s: none acknowledged for %s after the etcd leader's loss, want ≤ 15 s", n.Name, gap.Round(100*time.Millisecond))
		}
	}

	// Back: its etcd member catches up, no one acting.
	leader.start()
	back := time.Now()
	eventually(t, 3*time.Minute, func() error { return etcdSettled(nodes, names) })
	eventually(t, 2*time.Minute, func() error { return allReady(k.an, names...) })
	t.Logf("%s restarted: etcd member back and Node Ready after %s", leader.Name, time.Since(back).Round(time.Second))
	time.Sleep(3 * time.Second)
	wr.stop()
	lost, acked := wr.lost(t, k.an)
	t.Logf("%d writes acknowledged, %d lost", acked, lost)
	if lost > 0 || acked == 0 {
		t.Errorf("%d of %d acknowledged writes lost", lost, acked)
	}

	checkSecretsRotated(t, nodes)

	// One member down: removing another would lose etcd's quorum.
	k.b.stop(syscall.SIGTERM)
	time.Sleep(10 * time.Second)
	if out, err := k.an.Hepto("remove", "home-a"); err == nil || !strings.Contains(err.Error(), "quorum") {
		t.Fatalf("removal of home-a with home-b down: %q %v, want a refusal naming the quorum", out, err)
	} else {
		t.Logf("removal refused: %v", err)
	}
	if _, ok := peer(mustStatus(t, k.an), "home-a"); !ok {
		t.Error("home-a left the membership although its removal was refused")
	}
}

// etcdSettled checks that every node sees the same three voting etcd
// members and the same leader.
func etcdSettled(nodes []*node, names []string) error {
	var leader string
	for _, n := range nodes {
		st, _, err := n.status()
		if err != nil {
			return err
		}
		cp := st.Kubernetes.ControlPlane
		if cp == nil {
			return fmt.Errorf("%s: no control_plane in status", n.Name)
		}
		var voters []string
		for _, m := range cp.Members {
			if !m.Learner && m.Name != "" {
				voters = append(voters, m.Name)
			}
		}
		slices.Sort(voters)
		if !slices.Equal(voters, names) {
			return fmt.Errorf("%s: etcd voters %v", n.Name, members(cp))
		}
		if cp.Leader == "" || (leader != "" && cp.Leader != leader) {
			return fmt.Errorf("%s: etcd leader %q (others: %q)", n.Name, cp.Leader, leader)
		}
		leader = cp.Leader
	}
	return nil
}

// overlayBytes sums the node's WireGuard bytes from and to its peers.
func overlayBytes(t *testing.T, n *node) (rx, tx int64) {
	for _, p := range mustStatus(t, n).Peers {
		rx += int64(p.RxBytes)
		tx += int64(p.TxBytes)
	}
	return rx, tx
}

// portAccounting counts the node's overlay traffic by TCP port (either
// end's) with iptables rules of its own; the function returned reads the
// counts (kB in/out).
func portAccounting(t *testing.T, n *node, ports ...string) func() string {
	chain := "HEPTO-TEST-ACCT"
	run := func(args ...string) string {
		out, err := n.Host.Run(n.w.ctx, "iptables", args...)
		if err != nil {
			t.Fatalf("iptables %v: %v %s", args, err, out)
		}
		return out
	}
	run("-N", chain)
	for _, hook := range []string{"INPUT", "OUTPUT"} {
		run("-I", hook, "-j", chain)
	}
	for _, p := range ports {
		for _, end := range []string{"--sport", "--dport"} {
			run("-A", chain, "-i", "hep+", "-p", "tcp", end, p, "-m", "comment", "--comment", "in "+p)
			run("-A", chain, "-o", "hep+", "-p", "tcp", end, p, "-m", "comment", "--comment", "out "+p)
		}
	}
	return func() string {
		sum := map[string]float64{}
		for _, line := range strings.Split(run("-L", chain, "-v", "-x", "-n"), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			b, err := strconv.ParseFloat(f[1], 64)
			if i := strings.Index(line, "/* "); err == nil && i >= 0 {
				sum[strings.TrimSuffix(line[i+3:], " */")] += b / 1000
			}
		}
		var out []string
		for _, p := range ports {
			out = append(out, fmt.Sprintf("%s %.1f/%.1f", p, sum["in "+p], sum["out "+p]))
		}
		return strings.Join(out, ", ")
	}
}

// apiWrites sums the requests the apiservers of nodes made to etcd so
// far, by operation and resource (etcd_requests_total): writes, and the
// reads that reach etcd (each a round to the leader on a follower).
func apiWrites(t *testing.T, nodes []*node) map[string]float64 {
	t.Helper()
	sum := map[string]float64{}
	for _, n := range nodes {
		for _, line := range strings.Split(kubectl(t, n, "get", "--raw", "/metrics"), "\n") {
			if !strings.HasPrefix(line, "etcd_requests_total{") {
				continue
			}
			op, resource := label(line, "operation"), label(line, "resource")
			i := strings.LastIndexByte(line, ' ')
			v, err := strconv.ParseFloat(line[i+1:], 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			sum[op+" "+resource] += v
		}
	}
	return sum
}

// label is the value of a metric line's label.
func label(line, name string) string {
	_, v, ok := strings.Cut(line, name+`="`)
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, `"`)
	return v
}

// writeRates: the writes a minute between two apiWrites over minutes,
// most first.
func writeRates(before, after map[string]float64, minutes float64) string {
	type rate struct {
		what string
		n    float64
	}
	var rs []rate
	total := 0.0
	for k, v := range after {
		if d := (v - before[k]) / minutes; d > 0 {
			rs = append(rs, rate{k, d})
			total += d
		}
	}
	slices.SortFunc(rs, func(a, b rate) int { return int(b.n*10 - a.n*10) })
	out := []string{fmt.Sprintf("%.1f in all", total)}
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s %.1f", r.what, r.n))
	}
	return strings.Join(out, ", ")
}

// memoryMB is the hepto process's resident memory and its peak.
func memoryMB(t *testing.T, n *node) (rss, peak float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.Proc.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		for key, v := range map[string]*float64{"VmRSS:": &rss, "VmHWM:": &peak} {
			if s, ok := strings.CutPrefix(line, key); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), " kB"), 64)
				*v = kb / 1024
			}
		}
	}
	return rss, peak
}

func members(cp *localapi.ControlPlaneStatus) string {
	b, _ := json.Marshal(cp.Members)
	return string(b)
}

// writeGap is the longest time without an acknowledged write from the
// last one before at up to the first one after it.
func writeGap(acks []time.Time, at time.Time) time.Duration {
	var before, after time.Time
	for _, a := range acks {
		if !a.After(at) {
			before = a
		} else if after.IsZero() {
			after = a
		}
	}
	if before.IsZero() || after.IsZero() {
		return time.Hour
	}
	return after.Sub(before)
}

// TestIdleCP (make bench-cp) measures a control-plane
// home's idle overlay traffic with hepto's timings, then with upstream's
// (hepto run --upstream-timings), each in a lab cluster of its own: three
// control-plane nodes (the anchor, home-a, home-b), a second anchor, no
// pods. It prints a table; the figures go in docs/benchmarks.md.
func TestIdleCP(t *testing.T) {
	if os.Getenv("HEPTO_BENCH_CP") == "" {
		t.Skip("a benchmark of a few minutes: make bench-cp (HEPTO_BENCH_CP=1)")
	}
	type row struct {
		timings         string
		in, out         float64 // kB/min on home-a's overlay
		etcdIn, etcdOut float64 // of which etcd's peers (TCP 2380)
		rss             float64 // MB, home-a's hepto
	}
	var rows []row
	for _, timings := range []string{"hepto", "upstream"} {
		t.Run(timings, func(t *testing.T) {
			var flags func(*world) []string
			if timings == "upstream" {
				flags = func(*world) []string { return []string{"--upstream-timings"} }
			}
			k := startKube(t, kubeOptions{controlPlanes: true, secondAnchor: true, flags: flags})
			nodes := []*node{k.an, k.a, k.b}
			eventually(t, 3*time.Minute, func() error { return etcdSettled(nodes, []string{"anchor", "home-a", "home-b"}) })
			time.Sleep(time.Minute) // past the start's writes
			acct := portAccounting(t, k.a, "2380")
			w0 := apiWrites(t, nodes)
			rx0, tx0 := overlayBytes(t, k.a)
			time.Sleep(2 * time.Minute)
			rx1, tx1 := overlayBytes(t, k.a)
			t.Logf("the apiservers' requests to etcd a minute: %s", writeRates(w0, apiWrites(t, nodes), 2))
			r := row{timings: timings, in: float64(rx1-rx0) / 2000, out: float64(tx1-tx0) / 2000}
			if _, err := fmt.Sscanf(acct(), "2380 %f/%f", &r.etcdIn, &r.etcdOut); err != nil {
				t.Fatal(err)
			}
			r.etcdIn, r.etcdOut = r.etcdIn/2, r.etcdOut/2
			r.rss, _ = memoryMB(t, k.a)
			rows = append(rows, r)
		})
	}
	if len(rows) != 2 {
		t.Fatal("a cluster did not settle")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-9s %12s %12s %14s %14s %8s\n", "timings", "in kB/min", "out kB/min", "etcd in", "etcd out", "RSS MB")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-9s %12.1f %12.1f %14.1f %14.1f %8.0f\n", r.timings, r.in, r.out, r.etcdIn, r.etcdOut, r.rss)
	}
	fmt.Fprintf(&b, "hepto / upstream: in %.2f, out %.2f\n", rows[0].in/rows[1].in, rows[0].out/rows[1].out)
	t.Log(b.String())
}

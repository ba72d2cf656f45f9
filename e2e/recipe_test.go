package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEtcdRecipe: data that outlives a home. The recipe of
// docs/recipes/etcd.md (three etcd members, one per home, on local
// volumes) while a writer on the anchor records every acknowledged write:
// one home cut off for minutes (the others go on; the home's member
// catches up when it returns), then a home lost for good (a power cut, its
// uplink gone), replaced by the documented steps. Every acknowledged write
// is there at the end.
func TestEtcdRecipe(t *testing.T) {
	if !chaos() {
		t.Skip("a home cut off for 5 minutes, then a home lost: make chaos (HEPTO_CHAOS=1)")
	}
	cut := 5 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("HEPTO_ETCD_CUT")); err == nil {
		cut = d
	}
	k := startKube(t, kubeOptions{threeHomes: true})
	an := k.an
	archive := buildProgramImage(t, "../lab/etcdmember", "hepto.test/etcd-member:1")
	for _, n := range []*node{k.a, k.a2, k.b, k.c, an} {
		if out, err := n.Hepto("images", "import", archive); err != nil {
			t.Fatalf("%s: hepto images import: %v: %s", n.Name, err, out)
		}
	}
	kubectl(t, an, "apply", "-f", "../docs/recipes/etcd.yaml")
	kubectl(t, an, "rollout", "status", "statefulset/etcd", "--timeout=300s")
	zoneOf := map[string]string{"home-a": "home-a", "home-a2": "home-a", "home-b": "home-b", "home-c": "home-c"}
	memberOn := func() map[string]string { // node → member
		out := kubectl(t, an, "get", "pods", "-l", "app=etcd", "-o", `jsonpath={range .items[*]}{.spec.nodeName}={.metadata.name}{"\n"}{end}`)
		m := map[string]string{}
		for _, l := range strings.Fields(out) {
			node, pod, _ := strings.Cut(l, "=")
			m[node] = pod
		}
		return m
	}
	members := memberOn()
	var zones []string
	for node := range members {
		zones = append(zones, zoneOf[node])
	}
	slices.Sort(zones)
	if strings.Join(zones, " ") != "home-a home-b home-c" {
		t.Fatalf("members on %v: want one per home", members)
	}
	endpoint := func(member string) string { return "http://" + member + ".etcd.default.svc.cluster.local:2379" }
	all := endpoint("etcd-0") + "," + endpoint("etcd-1") + "," + endpoint("etcd-2")
	kubectl(t, an, "run", "writer", "--image", "hepto.test/etcd-member:1", "--image-pull-policy", "Never",
		"--overrides", `{"spec":{"nodeName":"anchor","tolerations":[{"operator":"Exists"}]}}`, "--command", "--", "/etcdmember", "write", all, "k-")
	acks := func() []string {
		out, _ := kubectlErr(an, "logs", "writer")
		var keys []string
		for _, l := range strings.Split(out, "\n") {
			if key, ok := strings.CutPrefix(l, "ack "); ok {
				keys = append(keys, key)
			}
		}
		return keys
	}
	waitAcks := func(n int, within time.Duration) {
		t.Helper()
		eventually(t, within, func() error {
			if got := len(acks()); got < n {
				return fmt.Errorf("%d writes acknowledged, want %d", got, n)
			}
			return nil
		})
	}
	// holds: member's own copy (a serializable read there) has every key.
	holds := func(member string, keys []string) error {
		out, err := kubectlErr(an, "exec", "writer", "--", "/etcdmember", "local", endpoint(member), "k-")
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, k := range strings.Fields(out) {
			have[k] = true
		}
		for _, k := range keys {
			if !have[k] {
				return fmt.Errorf("%s lacks %s (of %d acknowledged)", member, k, len(keys))
			}
		}
		return nil
	}
	waitAcks(20, 2*time.Minute)

	// 1. home-b cut off: the two other homes go on; home-b's member
	// catches up when it returns.
	if err := k.homeB.SetDelay(0, 100); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			k.homeB.SetDelay(0, 0)
		}
	}()
	before := len(acks())
	time.Sleep(cut)
	during := len(acks()) - before
	t.Logf("home-b cut off for %s: %d writes acknowledged meanwhile", cut, during)
	if during < int(cut/time.Second) { // ten a second when all is well
		t.Errorf("%d writes acknowledged in %s with home-b cut off: the other two homes did not go on", during, cut)
	}
	k.homeB.SetDelay(0, 0)
	restored = true
	back := time.Now()
	written := acks()
	eventually(t, 3*time.Minute, func() error { return holds(members["home-b"], written) })
	t.Logf("home-b's member %s caught up %s after the uplink came back", members["home-b"], time.Since(back).Round(time.Second))

	// 2. home-c lost for good: a power cut, its uplink down. The
	// documented steps replace its member in another home.
	lost := members["home-c"]
	if err := k.c.PowerCut(); err != nil {
		t.Fatal(err)
	}
	if err := k.homeC.SetDelay(0, 100); err != nil {
		t.Fatal(err)
	}
	gone := time.Now()
	waitAcks(len(acks())+50, time.Minute) // two members: writes go on
	if out, err := an.Hepto("remove", "home-c"); err != nil {
		t.Fatalf("hepto remove home-c: %v: %s", err, out)
	}
	kubectl(t, an, "delete", "pvc", "data-"+lost, "--wait=false")
	// The claim first: the StatefulSet makes no pod on a claim being
	// deleted, and makes a new claim with the pod once it is gone.
	kubectl(t, an, "delete", "pod", lost, "--force", "--grace-period=0", "--ignore-not-found")
	kubectl(t, an, "rollout", "status", "statefulset/etcd", "--timeout=300s")
	now := memberOn()
	var where string
	for node, m := range now {
		if m == lost {
			where = node
		}
	}
	if where == "" || where == "home-c" {
		t.Fatalf("member %s on %q after the replacement (%v)", lost, where, now)
	}
	t.Logf("member %s replaced on %s %s after home-c's power cut", lost, where, time.Since(gone).Round(time.Second))
	waitAcks(len(acks())+20, time.Minute)

	// Every acknowledged write, on every member.
	final := acks()
	for _, m := range []string{"etcd-0", "etcd-1", "etcd-2"} {
		eventually(t, 2*time.Minute, func() error { return holds(m, final) })
	}
	t.Logf("%d acknowledged writes, all on the three members", len(final))
}

package cni

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hepto-net/hepto/cni/ipam"
	"github.com/hepto-net/hepto/lab"
)

func resultIPs(t *testing.T, res *current.Result) []netip.Addr {
	t.Helper()
	var ips []netip.Addr
	for _, c := range res.IPs {
		a, ok := netip.AddrFromSlice(c.Address.IP)
		if !ok {
			t.Fatalf("bad address %v", c.Address)
		}
		ips = append(ips, a.Unmap())
	}
	return ips
}

// ADD gives a working, honest attachment; CHECK sees it break; DEL is
// idempotent and leaves nothing.
func TestAddCheckDel(t *testing.T) {
	e := newEnv(t)
	p := e.pod("pod1")
	att := lab.Attachment{ContainerID: "c1", Pod: p}
	res, err := e.rt.Add(e.ctx, att)
	if err != nil {
		t.Fatal(err)
	}
	ips := resultIPs(t, res)
	if err := inRanges(ips, e.pods); err != nil {
		t.Fatal(err)
	}
	if len(res.Interfaces) != 2 || res.Interfaces[1].Sandbox != p.NetnsPath() || res.Interfaces[0].Sandbox != "" {
		t.Fatalf("interfaces: %v", res.Interfaces)
	}
	if out := e.run(p, "ip", "link", "show", "eth0"); !strings.Contains(out, "mtu 1400") {
		t.Fatalf("pod interface: %s", out)
	}
	for _, ip := range ips {
		e.run(e.node, "ping", "-c1", "-W2", ip.String())
	}
	e.run(p, "ping", "-c1", "-W2", e.node.IPv4.String())
	e.run(p, "ping", "-c1", "-W2", e.node.IPv6.String())
	// A full-size packet leaves the pod unfragmented; a larger one does not.
	e.run(p, "ping", "-c1", "-W2", "-M", "do", "-s", "1372", e.node.IPv4.String())
	if _, err := p.Run(e.ctx, "ping", "-c1", "-W2", "-M", "do", "-s", "1373", e.node.IPv4.String()); err == nil {
		t.Fatal("a 1401-byte packet left the pod")
	}

	if err := e.rt.Check(e.ctx, att); err != nil {
		t.Fatalf("CHECK after ADD: %v", err)
	}
	e.run(p, "ip", "-6", "route", "del", "default")
	if err := e.rt.Check(e.ctx, att); err == nil || !strings.Contains(err.Error(), "default route") {
		t.Fatalf("CHECK without the pod's IPv6 default route: %v", err)
	}
	e.run(p, "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0", "onlink")
	e.run(e.node, "ip", "route", "del", ips[0].String()+"/32")
	if err := e.rt.Check(e.ctx, att); err == nil || !strings.Contains(err.Error(), "no route") {
		t.Fatalf("CHECK without the node's route: %v", err)
	}

	for i := range 2 {
		if err := e.rt.Del(e.ctx, att); err != nil {
			t.Fatalf("DEL %d: %v", i+1, err)
		}
	}
	if v := e.hostVeths(); len(v) != 0 {
		t.Fatalf("veths left: %v", v)
	}
	if a := e.attachments(); len(a) != 0 {
		t.Fatalf("reservations left: %v", a)
	}
	// DEL without a namespace, as after the pod's is gone.
	if err := e.rt.Del(e.ctx, lab.Attachment{ContainerID: "c1"}); err != nil {
		t.Fatalf("DEL without netns: %v", err)
	}
}

// 50 concurrent ADDs on one node: 50 distinct addresses of each family;
// DEL of all frees them.
func TestConcurrentAddDel(t *testing.T) {
	e := newEnv(t)
	const n = 50
	atts := make([]lab.Attachment, n)
	for i := range atts {
		atts[i] = lab.Attachment{ContainerID: fmt.Sprintf("con%02d", i), Pod: e.pod(fmt.Sprintf("pod%02d", i))}
	}
	ips := make([][]netip.Addr, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range atts {
		wg.Go(func() {
			var res *current.Result
			if res, errs[i] = e.rt.Add(e.ctx, atts[i]); errs[i] == nil {
				ips[i] = resultIPs(t, res)
			}
		})
	}
	wg.Wait()
	t.Logf("%d concurrent ADDs in %v", n, time.Since(start).Round(time.Millisecond))
	seen := map[netip.Addr]string{}
	for i := range atts {
		if errs[i] != nil {
			t.Fatalf("ADD %s: %v", atts[i].ContainerID, errs[i])
		}
		if err := inRanges(ips[i], e.pods); err != nil {
			t.Fatal(err)
		}
		for _, ip := range ips[i] {
			if other, dup := seen[ip]; dup {
				t.Fatalf("%v given to %s and %s", ip, other, atts[i].ContainerID)
			}
			seen[ip] = atts[i].ContainerID
		}
	}
	if len(e.attachments()) != n || len(e.hostVeths()) != n {
		t.Fatalf("%d reservations, %d veths", len(e.attachments()), len(e.hostVeths()))
	}
	// Pods of the node reach each other.
	e.run(atts[0].Pod, "ping", "-c1", "-W2", ips[n-1][0].String())
	e.run(atts[0].Pod, "ping", "-c1", "-W2", ips[n-1][1].String())

	for i := range atts {
		wg.Go(func() { errs[i] = e.rt.Del(e.ctx, atts[i]) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("DEL %s: %v", atts[i].ContainerID, err)
		}
	}
	if len(e.attachments()) != 0 || len(e.hostVeths()) != 0 {
		t.Fatalf("after DEL: %v, %v", e.attachments(), e.hostVeths())
	}
}

// A plugin that dies between reserving addresses and setting up the
// interface: its addresses go to nobody else, a retry gets them back, and
// GC frees them when the runtime forgets the container.
func TestCrashAfterReservation(t *testing.T) {
	e := newEnv(t)
	crash := func(id string) []netip.Addr {
		// What such a plugin leaves: the reservation on disk, the lock
		// released by the kernel, no interface.
		st, err := ipam.Open(filepath.Join(e.state, "cni", "hepto"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		a, _, err := st.Acquire(id, "eth0", e.pods)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Commit(); err != nil {
			t.Fatal(err)
		}
		return a.IPs
	}
	retried, leaked := crash("retried"), crash("leaked")
	var live []lab.Attachment
	for i := range 5 {
		a := lab.Attachment{ContainerID: fmt.Sprint("live", i), Pod: e.pod(fmt.Sprint("live", i))}
		res, err := e.rt.Add(e.ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		for _, ip := range resultIPs(t, res) {
			if slices.Contains(retried, ip) || slices.Contains(leaked, ip) {
				t.Fatalf("%v given again", ip)
			}
		}
		live = append(live, a)
	}
	// The runtime retries the first container: same addresses.
	r := lab.Attachment{ContainerID: "retried", Pod: e.pod("retried")}
	res, err := e.rt.Add(e.ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if got := resultIPs(t, res); !slices.Equal(got, retried) {
		t.Fatalf("retry got %v, reserved %v", got, retried)
	}
	// GC with the live containers: the leak goes, nothing else.
	if err := e.rt.GC(e.ctx, append(live, r)...); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range e.attachments() {
		ids = append(ids, a.ContainerID)
	}
	slices.Sort(ids)
	if fmt.Sprint(ids) != "[live0 live1 live2 live3 live4 retried]" {
		t.Fatalf("after GC: %v", ids)
	}
	if len(e.hostVeths()) != 6 {
		t.Fatalf("veths after GC: %v", e.hostVeths())
	}
	if err := e.rt.Check(e.ctx, r); err != nil {
		t.Fatalf("CHECK of a live pod after GC: %v", err)
	}
}

// Plugins killed at random points of ADD (SIGKILL, through the runtime's
// context) leave no address given twice and no veth without its
// reservation; GC and DEL clean up, and the next ADDs work.
func TestKilledDuringAdd(t *testing.T) {
	e := newEnv(t)
	const n = 30
	atts := make([]lab.Attachment, n)
	ok := make([]bool, n)
	for i := range atts {
		atts[i] = lab.Attachment{ContainerID: fmt.Sprintf("k%02d", i), Pod: e.pod(fmt.Sprintf("k%02d", i))}
	}
	var wg sync.WaitGroup
	for i := range atts {
		wg.Go(func() {
			ctx := e.ctx
			if i%3 != 0 { // every third ADD runs to the end
				c, cancel := context.WithTimeout(e.ctx, time.Duration(rand.IntN(300))*time.Millisecond)
				defer cancel()
				ctx = c
			}
			_, err := e.rt.Add(ctx, atts[i])
			ok[i] = err == nil
			if i%3 == 0 && err != nil {
				t.Errorf("ADD %s without a deadline: %v", atts[i].ContainerID, err)
			}
		})
	}
	wg.Wait()
	done := 0
	for _, o := range ok {
		if o {
			done++
		}
	}
	t.Logf("%d of %d ADDs completed, %d killed", done, n, n-done)
	if done < n/3 || done == n {
		t.Fatalf("%d of %d ADDs completed: the test needs some completed and some killed", done, n)
	}
	reserved := map[string]bool{}
	seen := map[netip.Addr]bool{}
	for _, a := range e.attachments() {
		reserved[hostVethName(a.ContainerID, a.IfName)] = true
		for _, ip := range a.IPs {
			if seen[ip] {
				t.Fatalf("%v reserved twice", ip)
			}
			seen[ip] = true
		}
	}
	for _, v := range e.hostVeths() {
		if !reserved[v] {
			t.Fatalf("veth %s has no reservation", v)
		}
	}
	t.Logf("before GC: %d reservations, %d veths", len(reserved), len(e.hostVeths()))
	var valid []lab.Attachment
	for i, a := range atts {
		if ok[i] {
			valid = append(valid, a)
		}
	}
	if err := e.rt.GC(e.ctx, valid...); err != nil {
		t.Fatal(err)
	}
	if len(e.attachments()) != done || len(e.hostVeths()) != done {
		t.Fatalf("after GC: %d reservations, %d veths, want %d", len(e.attachments()), len(e.hostVeths()), done)
	}
	// The runtime deletes the failed ones and adds them again.
	for i, a := range atts {
		if ok[i] {
			continue
		}
		if err := e.rt.Del(e.ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := e.rt.Add(e.ctx, a); err != nil {
			t.Fatalf("ADD %s again: %v", a.ContainerID, err)
		}
	}
	if len(e.attachments()) != n || len(e.hostVeths()) != n {
		t.Fatalf("%d reservations, %d veths, want %d", len(e.attachments()), len(e.hostVeths()), n)
	}
}

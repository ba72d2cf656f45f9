package ipam

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	v4 = netip.MustParsePrefix("10.78.1.0/24")
	v6 = netip.MustParsePrefix("fd00:1:2:100::/64")
)

func acquire(t *testing.T, dir, id string, ranges ...netip.Prefix) Attachment {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, _, err := s.Acquire(id, "eth0", ranges)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAcquireOrderAndReuse(t *testing.T) {
	dir := t.TempDir()
	a := acquire(t, dir, "a", v4, v6)
	if fmt.Sprint(a.IPs) != "[10.78.1.2 fd00:1:2:100::2]" {
		t.Fatalf("first attachment: %v", a.IPs)
	}
	b := acquire(t, dir, "b", v4, v6)
	if fmt.Sprint(b.IPs) != "[10.78.1.3 fd00:1:2:100::3]" {
		t.Fatalf("second attachment: %v", b.IPs)
	}
	// Same (id, ifname) again, as after a crash: same addresses.
	if again := acquire(t, dir, "a", v4, v6); fmt.Sprint(again.IPs) != fmt.Sprint(a.IPs) {
		t.Fatalf("retry got %v, want %v", again.IPs, a.IPs)
	}
	// A freed address is not handed out again at once.
	s, _ := Open(dir)
	s.Release("a", "eth0")
	s.Commit()
	s.Close()
	if c := acquire(t, dir, "c", v4, v6); c.IPs[0] != netip.MustParseAddr("10.78.1.4") {
		t.Fatalf("after release: %v", c.IPs)
	}
}

func TestExhaustedAndWrap(t *testing.T) {
	dir := t.TempDir()
	small := netip.MustParsePrefix("10.99.0.0/29") // .2 to .6
	if Size(small) != 5 {
		t.Fatalf("size %d", Size(small))
	}
	seen := map[netip.Addr]bool{}
	for i := range 5 {
		a := acquire(t, dir, fmt.Sprint("p", i), small)
		if seen[a.IPs[0]] || !usable(small, a.IPs[0]) {
			t.Fatalf("bad address %v", a.IPs[0])
		}
		seen[a.IPs[0]] = true
	}
	s, _ := Open(dir)
	_, _, err := s.Acquire("p5", "eth0", []netip.Prefix{small})
	if !errors.Is(err, ErrExhausted) {
		t.Fatalf("sixth: %v", err)
	}
	if Free(small, s.Attachments()) != 0 {
		t.Fatal("free addresses in a full range")
	}
	s.Release("p1", "eth0")
	a, _, err := s.Acquire("p5", "eth0", []netip.Prefix{small})
	if err != nil || a.IPs[0] != netip.MustParseAddr("10.99.0.3") {
		t.Fatalf("after wrap: %v %v", a.IPs, err)
	}
	s.Close()
}

func TestSizes(t *testing.T) {
	for p, want := range map[string]uint64{"10.0.0.0/24": 253, "10.0.0.0/30": 1, "10.0.0.0/31": 0, "fd00::/120": 254, "fd00::/64": 1<<64 - 1} {
		if got := Size(netip.MustParsePrefix(p)); got != want {
			t.Errorf("Size(%s) = %d, want %d", p, got, want)
		}
	}
}

// Concurrent stores, as concurrent plugin processes: each flock is on its
// own open file, so they exclude each other within one process too.
func TestConcurrentAcquire(t *testing.T) {
	dir := t.TempDir()
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			s, err := Open(dir)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			if _, _, err := s.Acquire(fmt.Sprint("c", i), "eth0", []netip.Prefix{v4, v6}); err != nil {
				errs <- err
				return
			}
			errs <- s.Commit()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	atts, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != n {
		t.Fatalf("%d attachments, want %d", len(atts), n)
	}
	seen := map[netip.Addr]string{}
	for _, a := range atts {
		for _, ip := range a.IPs {
			if other, dup := seen[ip]; dup {
				t.Fatalf("%v given to %s and %s", ip, other, a.ContainerID)
			}
			seen[ip] = a.ContainerID
		}
	}
}

// Attachments of an earlier boot are gone with their namespaces.
func TestEarlierBoot(t *testing.T) {
	dir := t.TempDir()
	acquire(t, dir, "a", v4)
	var st state
	b, _ := os.ReadFile(filepath.Join(dir, DataFile))
	json.Unmarshal(b, &st)
	st.Boot = "another-boot"
	b, _ = json.Marshal(st)
	os.WriteFile(filepath.Join(dir, DataFile), b, 0o600)
	atts, err := Load(dir)
	if err != nil || len(atts) != 0 {
		t.Fatalf("attachments of another boot kept: %v %v", atts, err)
	}
	// The round-robin position survives.
	if a := acquire(t, dir, "b", v4); a.IPs[0] != netip.MustParseAddr("10.78.1.3") {
		t.Fatalf("after reboot: %v", a.IPs)
	}
}

// A torn file is dropped only if it predates this boot.
func TestCorruptFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DataFile)
	os.WriteFile(path, []byte(`{"boot":`), 0o600)
	if _, err := Open(dir); err == nil {
		t.Fatal("corrupt file of this boot accepted")
	}
	old := bootTime().Add(-time.Hour)
	os.Chtimes(path, old, old)
	atts, err := Load(dir)
	if err != nil || len(atts) != 0 {
		t.Fatalf("torn file of an earlier boot: %v %v", atts, err)
	}
}

// A temporary file left by a writer that died changes nothing.
func TestLeftoverTemp(t *testing.T) {
	dir := t.TempDir()
	a := acquire(t, dir, "a", v4)
	os.WriteFile(filepath.Join(dir, tempFile), []byte("garbage"), 0o600)
	b := acquire(t, dir, "b", v4)
	atts, _ := Load(dir)
	if len(atts) != 2 || a.IPs[0] == b.IPs[0] {
		t.Fatalf("%v", atts)
	}
}

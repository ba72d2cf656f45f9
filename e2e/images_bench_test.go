package e2e

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/hepto-net/hepto/k8s/images"
	"github.com/hepto-net/hepto/lab"
)

// TestBenchImages (make bench-images): a 100 MB image deployed on every
// node of a 5-node, 3-home cluster (a DaemonSet), with the nodes sharing
// images and without: the bytes across each home's uplink and the
// registry's.
func TestBenchImages(t *testing.T) {
	if os.Getenv("HEPTO_BENCH_IMAGES") == "" {
		t.Skip("a benchmark: make bench-images (HEPTO_BENCH_IMAGES=1)")
	}
	dir := t.TempDir()
	web := filepath.Join(dir, "web.tar")
	// The image: lab/web and 100 MB that do not compress.
	webBin := filepath.Join(dir, "web")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", webBin, "../lab/web")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build lab/web: %v: %s", err, out)
	}
	prog, _ := os.ReadFile(webBin)
	blob := make([]byte, 100<<20)
	rand.Read(blob)
	f, err := os.Create(web)
	if err != nil {
		t.Fatal(err)
	}
	const name = "hepto.test/big:1"
	err = images.WriteArchive(f, images.Image{Name: name, Arch: runtime.GOARCH, Entrypoint: []string{"/web"}, Cmd: []string{"serve"},
		Files: []images.File{{Path: "/web", Mode: 0o755, Data: prog}, {Path: "/data", Mode: 0o644, Data: blob}}})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(web)
	type result struct {
		uplinks  [3]uint64 // home-a, home-b, home-c: bytes in and out
		registry int64
		took     time.Duration
	}
	run := func(share bool) (res result) {
		t.Run(fmt.Sprintf("share=%v", share), func(t *testing.T) {
			flags := func(*world) []string { return []string{fmt.Sprintf("--share-images=%v", share)} }
			k := startKube(t, kubeOptions{threeHomes: true, flags: flags})
			r := serveRegistry(t, k.an.Host, web, k.an, k.a, k.a2, k.b, k.c)
			homes := []*lab.Home{k.homeA, k.homeB, k.homeC}
			var before [3]uint64
			for i, h := range homes {
				rx, tx, err := k.w.lab.UplinkCounters(h)
				if err != nil {
					t.Fatal(err)
				}
				before[i] = rx + tx
			}
			manifest := filepath.Join(t.TempDir(), "ds.yaml")
			os.WriteFile(manifest, []byte(bigDaemonSet), 0o644)
			start := time.Now()
			kubectl(t, k.an, "apply", "-f", manifest)
			kubectl(t, k.an, "rollout", "status", "daemonset/big", "--timeout=600s")
			res.took = time.Since(start)
			for i, h := range homes {
				rx, tx, _ := k.w.lab.UplinkCounters(h)
				res.uplinks[i] = rx + tx - before[i]
			}
			res.registry = r.Served.Load()
		})
		return res
	}
	with, without := run(true), run(false)
	mb := func(b uint64) float64 { return float64(b) / 1e6 }
	fmt.Printf("\nimage of %.1f MB on 5 nodes (home-a: 2, home-b: 1, home-c: 1, the anchor), %s\n", float64(fi.Size())/1e6, time.Now().UTC().Format("2006-01-02"))
	fmt.Printf("%-16s %12s %12s %12s %14s %10s\n", "", "home-a MB", "home-b MB", "home-c MB", "registry MB", "all pulled")
	for _, c := range []struct {
		name string
		r    result
	}{{"sharing", with}, {"no sharing", without}} {
		fmt.Printf("%-16s %12.1f %12.1f %12.1f %14.1f %9.1fs\n", c.name, mb(c.r.uplinks[0]), mb(c.r.uplinks[1]), mb(c.r.uplinks[2]), float64(c.r.registry)/1e6, c.r.took.Seconds())
	}
}

const bigDaemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: big}
spec:
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      tolerations: [{operator: Exists}]
      containers:
      - {name: web, image: "hepto.test/big:1", imagePullPolicy: Always, command: [/web, serve]}
`

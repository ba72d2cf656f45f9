package e2eimages

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepto-net/hepto/k8s/containerd"
)

// TestImagesRun builds every image, imports them into a containerd of
// its own (hepto's configuration, in a network namespace of its own) as
// hepto does, and runs in each the commands the suite's tests rely on.
//
// It needs root, runc, apt-get and dpkg-deb, and containerd's binaries
// (make build puts them in bin/): beside $HEPTO_BIN, else in the tree's
// bin/, else on PATH; and $HEPTO_E2E_IMAGES, a directory of archives as
// hepto-lab e2e-images --out DIR writes them, where those missing are
// built first (its cache then in DIR/.cache). Without it, the test
// skips: the first build of the images' programs takes minutes.
func TestImagesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs every image: not in -short")
	}
	if os.Getenv("HEPTO_E2E_IMAGES") == "" {
		t.Skip("set HEPTO_E2E_IMAGES=DIR, a directory of archives of hepto-lab e2e-images --out DIR " +
			"(make e2e-images: bin/e2e-images); the images missing there are built into it first")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: containerd, network namespaces")
	}
	for _, c := range []string{"runc", "ip", "nsenter", "apt-get", "dpkg-deb"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s on PATH", c)
		}
	}
	binDir := containerdDir()
	if binDir == "" {
		t.Skip("containerd, containerd-shim-runc-v2 and ctr not found beside $HEPTO_BIN, in bin/ nor on PATH (make build)")
	}
	// containerd.New looks for the binaries on PATH.
	t.Setenv("PATH", binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	// The archives of DIR, and those missing built into it.
	dir := os.Getenv("HEPTO_E2E_IMAGES")
	archives := map[string]string{}
	var missing []string
	for _, name := range Images() {
		a := filepath.Join(dir, ArchiveName(name))
		if exists(a) {
			archives[name] = a
		} else {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		module, err := filepath.Abs("../../third_party/e2eimages")
		if err != nil {
			t.Fatal(err)
		}
		built, err := Build(ctx, Options{Out: dir, Module: module, Only: missing})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range built {
			archives[b.Name] = b.Archive
		}
	}
	// Every image is to be run: one that is neither in DIR nor built fails
	// the test, rather than skipping its checks.
	for _, name := range Images() {
		if archives[name] == "" {
			t.Errorf("image %s: no archive %s in %s, and the build did not make it", name, ArchiveName(name), dir)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	c := startContainerd(ctx, t, binDir)
	for _, name := range Images() {
		if archives[name] != "" {
			c.ctr(t, "images", "import", "--snapshotter", "overlayfs", archives[name])
		}
	}
	out := c.ctr(t, "images", "list", "-q")
	for name := range archives {
		if !strings.Contains(out, name+"\n") {
			t.Errorf("image %s not in containerd after its import; images:\n%s", name, out)
		}
	}

	for _, tc := range []struct {
		image string
		flags []string // of ctr run
		args  []string
		want  []string // in the output, each
	}{
		{BusyBox, nil, []string{"sh", "-c", "echo ok; wget --help 2>&1 | head -1; nslookup --help 2>&1 | head -1; " +
			"cat /etc/passwd | grep -c nobody; hostname >/dev/null && sleep 0 && ls / >/dev/null && echo done"},
			[]string{"ok\n", "BusyBox v1.35", "\n1\n", "done\n"}},
		{BusyBox, []string{"--user", "1000"}, []string{"id", "-u"}, []string{"1000\n"}},
		// Environment names that are not shell names reach sh's children
		// (ConfigMap and Secret tests), and ash's own messages (the
		// read-only root test compares them).
		{BusyBox, []string{"--env", "data-1=value-1", "--read-only"}, []string{"/bin/sh", "-c", "env; echo test > /file; exit 0"},
			[]string{"data-1=value-1\n", "/bin/sh: can't create /file: Read-only file system\n"}},
		{Agnhost, nil, []string{"/agnhost", "--help"}, []string{"netexec", "test-webserver", "pause"}},
		{Agnhost, nil, []string{"/agnhost-2", "--help"}, []string{"netexec"}},
		{Agnhost, nil, []string{"sh", "-c", "set -e; for c in sh bash curl dig nslookup host nc ip ss socat iperf wget " +
			"cat seq grep sed awk timeout nsenter getent ping; do command -v $c >/dev/null || { echo missing $c; exit 1; }; done; " +
			"curl --version | head -1; dig -v 2>&1; nc -h 2>&1 | head -1; ip -V; socat -V | grep -m1 version; " +
			"iperf -v 2>&1 || true; bash --version | head -1; test -f /localhost.crt && test -d /uploads; echo all-there"},
			[]string{"curl 7.88", "DiG 9.18", "OpenBSD netcat", "iproute2", "socat version", "iperf version", "GNU bash", "all-there\n"}},
		{Agnhost, nil, []string{"id", "user-defined-in-image"}, []string{"uid=1000(user-defined-in-image)", "50000(group-defined-in-image)"}},
		{AgnhostPrev, nil, []string{"/agnhost", "--help"}, []string{"netexec"}},
		{Nautilus, nil, []string{"sh", "-c", "test -s /nautilus.jpg && test -s /data.json && echo ok"}, []string{"ok\n"}},
		{Kitten, nil, []string{"sh", "-c", "test -s /kitten.jpg && test -s /data.json && grep -q 'Alpine Linux' /etc/os-release && echo ok"}, []string{"ok\n"}},
		// As the kubelet runs it with allowPrivilegeEscalation unset or
		// true (ctr sets no_new_privs unless told), then false.
		{Nonewprivs, []string{"--user", "1000", "--allow-new-privs"}, []string{"nnp"}, []string{"Effective uid: 0\n"}},
		{Nonewprivs, []string{"--user", "1000"}, []string{"nnp"}, []string{"Effective uid: 1000\n"}},
		{NonRoot, nil, []string{"id", "-u"}, []string{"1234\n"}},
		{GlibcDNSTesting, nil, []string{"sh", "-c", `dig -v 2>&1; getent passwd root; seq 1 2; check="$(echo x)" && test -n "$check" && echo ok`},
			[]string{"DiG 9.18", "root:", "1\n2\n", "ok\n"}},
		{Etcd, nil, []string{"/usr/local/bin/etcd", "--version"}, []string{"etcd Version: 3.7.0"}},
		{SampleAPIServer, nil, []string{"/sample-apiserver", "--help"}, []string{"--etcd-servers", "--tls-cert-file"}},
		{Nginx, nil, []string{"nginx", "-t"}, []string{"syntax is ok", "test is successful"}},
	} {
		t.Run(ArchiveName(tc.image)+"/"+strings.Join(append(slices.Clone(tc.flags), tc.args[0]), " "), func(t *testing.T) {
			if archives[tc.image] == "" {
				t.Fatalf("%s not built", tc.image)
			}
			out, err := c.run(ctx, tc.image, tc.flags, tc.args...)
			if err != nil {
				t.Fatalf("%v: %v\n%s", tc.args, err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("%v: no %q in the output:\n%s", tc.args, w, out)
				}
			}
		})
	}

	// Servers, run by their image's own command (or the suite's), asked
	// by busybox's wget from another container in the same network
	// namespace.
	poll := func(url string) []string {
		return []string{"sh", "-c", fmt.Sprintf("for i in $(seq 1 100); do wget -qO- %s && exit 0; sleep 0.1; done; exit 1", url)}
	}
	for _, tc := range []struct {
		image string
		args  []string // none: the image's entrypoint and command
		ask   []string
		want  string
	}{
		{Nginx, nil, poll("http://127.0.0.1/"), "Welcome to nginx!"},
		{Nginx, nil, poll("http://[::1]/"), "Welcome to nginx!"},
		{NginxNew, nil, poll("http://127.0.0.1/index.html"), "Welcome to nginx!"},
		{Nautilus, nil, poll("http://127.0.0.1/data.json"), "{"},
		{Etcd, []string{"/usr/local/bin/etcd", "--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379"},
			poll("http://127.0.0.1:2379/health"), `"health":"true"`},
	} {
		t.Run(ArchiveName(tc.image)+"/serve", func(t *testing.T) {
			if archives[tc.image] == "" || archives[BusyBox] == "" {
				t.Fatalf("%s or %s not built", tc.image, BusyBox)
			}
			stop, err := c.start(ctx, tc.image, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.run(ctx, BusyBox, nil, tc.ask...)
			logs := stop()
			if err != nil || !strings.Contains(out, tc.want) {
				t.Errorf("%v: %v, no %q in:\n%s\nthe server's output:\n%s", tc.ask, err, tc.want, out, logs)
			}
		})
	}
}

// containerdDir is the directory of containerd's binaries, or "".
func containerdDir() string {
	var dirs []string
	if b := os.Getenv("HEPTO_BIN"); b != "" {
		dirs = append(dirs, filepath.Dir(b))
	}
	if abs, err := filepath.Abs("../../bin"); err == nil {
		dirs = append(dirs, abs)
	}
	if p, err := exec.LookPath("containerd"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		ok := true
		for _, name := range []string{"containerd", "containerd-shim-runc-v2", "ctr"} {
			if fi, err := os.Stat(filepath.Join(d, name)); err != nil || fi.Mode()&0o111 == 0 {
				ok = false
			}
		}
		if ok {
			return d
		}
	}
	return ""
}

// testContainerd is a containerd run for a test in a network namespace of
// its own, where the containers run (ctr run --net-host).
type testContainerd struct {
	bin, socket, netns string
	n                  int
}

func startContainerd(ctx context.Context, t *testing.T, binDir string) *testContainerd {
	dir, err := os.MkdirTemp("", "e2eimg")
	if err != nil {
		t.Fatal(err)
	}
	c, err := containerd.New(containerd.Options{Dir: dir, CNIConfDir: filepath.Join(dir, "cni"), CNIBinDirs: []string{binDir}})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := c.WriteConfig()
	if err != nil {
		t.Fatal(err)
	}
	netns := fmt.Sprintf("hepto-e2eimg-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", netns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	if out, err := exec.Command("ip", "-n", netns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	// nsenter, not ip netns exec, which mounts a sysfs of the namespace
	// over /sys and hides the cgroup file systems runc needs.
	cmd := exec.Command("nsenter", "--net=/run/netns/"+netns, "--", filepath.Join(binDir, "containerd"), "--config", conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tc := &testContainerd{bin: filepath.Join(binDir, "ctr"), socket: c.Socket(), netns: netns}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		exec.Command("ip", "netns", "delete", netns).Run()
		exec.Command("umount", "-R", filepath.Join(dir, "state")).Run()
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing %s: %v", dir, err)
		}
		if t.Failed() {
			t.Logf("containerd's output:\n%s", logs.Bytes())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := exec.CommandContext(ctx, tc.bin, "--address", tc.socket, "version").Run(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not answering after 20 s:\n%s", logs.Bytes())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return tc
}

// ctr runs ctr in Kubernetes' namespace and returns its output.
func (c *testContainerd) ctr(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.ctrOut(context.Background(), args...)
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *testContainerd) ctrOut(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--address", c.socket, "--namespace", containerd.Namespace}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// run runs args (all of the process's command line) in a new container of
// image, with flags of ctr run, and returns its output.
func (c *testContainerd) run(ctx context.Context, image string, flags []string, args ...string) (string, error) {
	c.n++
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	a := append([]string{"run", "--rm", "--net-host", "--snapshotter", "overlayfs"}, flags...)
	a = append(a, image, fmt.Sprintf("run-%d", c.n))
	return c.ctrOut(ctx, append(a, args...)...)
}

// start runs a container of image in the background, with args or the
// image's command line; stop kills it and returns its output.
func (c *testContainerd) start(ctx context.Context, image string, args ...string) (stop func() string, err error) {
	c.n++
	id := fmt.Sprintf("server-%d", c.n)
	log := filepath.Join(os.TempDir(), fmt.Sprintf("e2eimg-%d-%s.log", os.Getpid(), id))
	a := append([]string{"run", "-d", "--net-host", "--snapshotter", "overlayfs", "--log-uri", "file://" + log, image, id}, args...)
	if out, err := c.ctrOut(ctx, a...); err != nil {
		return nil, fmt.Errorf("ctr run -d %s: %v: %s", image, err, out)
	}
	return func() string {
		c.ctrOut(ctx, "task", "kill", "-s", "SIGKILL", id)
		for i := 0; i < 50; i++ {
			if _, err := c.ctrOut(ctx, "task", "delete", id); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.ctrOut(ctx, "containers", "delete", id)
		out, _ := os.ReadFile(log)
		os.Remove(log)
		return string(out)
	}, nil
}

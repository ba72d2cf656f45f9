package e2eimages

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseSimulation(t *testing.T) {
	out := `NOTE: This is only a simulation!
Reading package lists...
Building dependency tree...
The following NEW packages will be installed:
  libc6 mawk nginx
Inst libc6 (2.36-9+deb12u14 Debian-Security:12/stable-security [amd64])
Inst mawk (1.3.4.20200120-3.1 Debian:12.12/stable [amd64])
Inst base-files [12.4] (12.4+deb12u15 Debian:12.12/stable [arm64])
Inst tzdata (2025b-0+deb12u2 Debian:12.12/stable [all])
Conf libc6 (2.36-9+deb12u14 Debian-Security:12/stable-security [amd64])
`
	got, err := parseSimulation([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []deb{
		{"base-files", "12.4+deb12u15", "arm64"},
		{"libc6", "2.36-9+deb12u14", "amd64"},
		{"mawk", "1.3.4.20200120-3.1", "amd64"},
		{"tzdata", "2025b-0+deb12u2", "all"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := parseSimulation([]byte("Inst garbage\n")); err == nil {
		t.Error("a line it cannot read: no error")
	}
	if _, err := parseSimulation([]byte("0 upgraded, 0 newly installed\n")); err == nil {
		t.Error("nothing to install: no error")
	}
}

func TestDebFile(t *testing.T) {
	d := deb{"busybox-static", "1:1.35.0-4+deb12u1+b1", "amd64"}
	if got := d.File(); got != "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb" {
		t.Errorf("file %q", got)
	}
}

func TestArchiveName(t *testing.T) {
	for name, want := range map[string]string{
		Agnhost:         "agnhost-2.66.1.tar",
		Etcd:            "etcd-3.7.0-0.tar",
		SampleAPIServer: "sample-apiserver-1.29.2.tar",
	} {
		if got := ArchiveName(name); got != want {
			t.Errorf("ArchiveName(%s) = %s, want %s", name, got, want)
		}
	}
	// Every image has an archive of its own.
	seen := map[string]string{}
	for _, n := range Images() {
		a := ArchiveName(n)
		if other, ok := seen[a]; ok {
			t.Errorf("%s and %s both in %s", n, other, a)
		}
		seen[a] = n
	}
	if len(seen) != 12 {
		t.Errorf("%d images, want 12", len(seen))
	}
}

// write makes files (path → contents; "->target" is a symbolic link)
// under root.
func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(data, "->"); ok {
			err = os.Symlink(target, full)
		} else {
			err = os.WriteFile(full, []byte(data), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestMergeUsr(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"bin/dash":                      "dash",
		"bin/rbash":                     "rbash",
		"usr/bin/rbash":                 "->bash", // a link gives way to a file ...
		"bin/ping":                      "->/usr/bin/ping",
		"usr/bin/ping":                  "ping", // ... and a file stays
		"sbin/ip":                       "ip",
		"lib/x86_64-linux-gnu/a.so":     "a",
		"usr/lib/x86_64-linux-gnu/b.so": "b",
		"lib64/ld.so":                   "->/lib/x86_64-linux-gnu/ld.so",
	})
	if err := mergeUsr(root); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		if target, err := os.Readlink(filepath.Join(root, d)); err != nil || target != "usr/"+d {
			t.Errorf("/%s: %q, %v; want a link to usr/%s", d, target, err, d)
		}
	}
	for p, want := range map[string]string{
		"usr/bin/dash": "dash", "usr/bin/ping": "ping", "usr/sbin/ip": "ip", "usr/bin/rbash": "rbash",
		"usr/lib/x86_64-linux-gnu/a.so": "a", "usr/lib/x86_64-linux-gnu/b.so": "b",
	} {
		if got, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", p, got, err, want)
		}
	}
	// Twice is once.
	if err := mergeUsr(root); err != nil {
		t.Fatal(err)
	}

	both := t.TempDir()
	write(t, both, map[string]string{"bin/x": "1", "usr/bin/x": "2"})
	if err := mergeUsr(both); err == nil {
		t.Error("two files of one name: no error")
	}
}

func TestSlimAndSetUp(t *testing.T) {
	root := t.TempDir()
	write(t, root, map[string]string{
		"usr/share/doc/bash/copyright":         "GPL",
		"usr/share/doc/bash/changelog.gz":      "x",
		"usr/share/doc/bash/examples/a":        "x",
		"usr/share/man/man1/bash.1.gz":         "x",
		"usr/share/locale/fr/LC_MESSAGES/x.mo": "x",
		"usr/share/base-passwd/passwd.master":  "root:*:0:0:root:/root:/bin/bash\n",
		"usr/share/base-passwd/group.master":   "root:*:0:\n",
		"usr/share/base-files/nsswitch.conf":   "hosts: files dns\n",
		"usr/bin/dash":                         "dash",
		"usr/bin/mawk":                         "mawk",
	})
	if err := slim(root); err != nil {
		t.Fatal(err)
	}
	if err := setUp(root, map[string]string{"usr/bin/awk": "mawk", "usr/bin/nc": "nc.openbsd"}); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"usr/share/doc/bash/changelog.gz", "usr/share/doc/bash/examples", "usr/share/man", "usr/share/locale"} {
		if exists(filepath.Join(root, gone)) {
			t.Errorf("%s still there", gone)
		}
	}
	for p, want := range map[string]string{
		"usr/share/doc/bash/copyright": "GPL",
		"etc/passwd":                   "root:*:0:0:root:/root:/bin/bash\n",
		"etc/group":                    "root:*:0:\n",
		"etc/nsswitch.conf":            "hosts: files dns\n",
	} {
		if got, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", p, got, err, want)
		}
	}
	for link, want := range map[string]string{"usr/bin/sh": "dash", "usr/bin/awk": "mawk"} {
		if got, err := os.Readlink(filepath.Join(root, link)); err != nil || got != want {
			t.Errorf("%s: %q, %v; want a link to %s", link, got, err, want)
		}
	}
	if exists(filepath.Join(root, "usr/bin/nc")) {
		t.Error("a link to nc.openbsd, which is not there")
	}
	// With bash there, sh is bash: it passes on environment variables
	// whose names are not shell names, as pods may have.
	withBash := t.TempDir()
	if err := os.MkdirAll(filepath.Join(withBash, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"usr/bin/bash", "usr/bin/dash"} {
		if err := os.WriteFile(filepath.Join(withBash, f), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := setUp(withBash, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(filepath.Join(withBash, "usr/bin/sh")); err != nil || got != "bash" {
		t.Errorf("sh with bash there: %q, %v; want a link to bash", got, err)
	}
}

func TestAddApplets(t *testing.T) {
	list := []string{"bin/sh", "bin/ls", "usr/bin/wget", "sbin/ifconfig", "usr/sbin/crond", "linuxrc", "bin/busybox"}
	root := t.TempDir()
	write(t, root, map[string]string{"usr/bin/busybox": "bb", "usr/bin/ls": "coreutils ls", "usr/sbin/ifconfig": "net-tools"})
	if err := addApplets(root, list, false); err != nil {
		t.Fatal(err)
	}
	for link, want := range map[string]string{
		"usr/bin/sh": "busybox", "usr/bin/wget": "busybox", "usr/sbin/crond": "../bin/busybox",
	} {
		if got, err := os.Readlink(filepath.Join(root, link)); err != nil || got != want {
			t.Errorf("%s: %q, %v; want a link to %s", link, got, err, want)
		}
	}
	for p, want := range map[string]string{"usr/bin/ls": "coreutils ls", "usr/sbin/ifconfig": "net-tools", "usr/bin/busybox": "bb"} {
		if got, err := os.ReadFile(filepath.Join(root, p)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want the package's %q", p, got, err, want)
		}
	}
	if exists(filepath.Join(root, "linuxrc")) {
		t.Error("/linuxrc made")
	}

	// All of them, in /bin as the busybox image has them: busybox alone.
	alone := t.TempDir()
	write(t, alone, map[string]string{"usr/bin/busybox": "bb"})
	if err := addApplets(alone, list, true); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{"usr/bin/sh", "usr/bin/ls", "usr/bin/wget", "usr/bin/ifconfig", "usr/bin/crond"} {
		if got, err := os.Readlink(filepath.Join(alone, link)); err != nil || got != "busybox" {
			t.Errorf("%s: %q, %v; want a link to busybox", link, got, err)
		}
	}
}

package e2eimages

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// The busybox image's busybox is built from Debian's source package, with
// Debian's patches and the configuration of its busybox-static, and one
// option turned on: FEATURE_DI_ENV_HACK, which Debian's installer build
// (the udeb) has too. Without it, Debian's ash drops the environment
// variables whose names are not shell names ("data-1"), as upstream's did
// before 1.28; the suite gives pods such variables and reads them back
// through sh -c env. Upstream's busybox keeps them, and its ash's messages
// ("/bin/sh: can't create /file: …") are what the suite compares.

// busyboxOption is the one change to Debian's static configuration.
const busyboxOption = "CONFIG_FEATURE_DI_ENV_HACK"

// buildBusybox builds busybox for this machine's architecture into the
// cache, unless it is there, and returns the binary and the source
// package's version. It needs deb-src lists for the machine's Debian
// sources (kept under the cache, fetched at most once a day), dpkg-dev
// and a C compiler (make deps installs them).
func (a *apt) buildBusybox(ctx context.Context) (bin, version string, err error) {
	if !a.own {
		return "", "", fmt.Errorf("busybox is built for this machine's architecture only, not %s", a.arch)
	}
	dir := filepath.Join(a.cache, "busybox")
	src := &apt{cache: a.cache, arch: a.arch, dir: filepath.Join(dir, "apt"), own: true, log: a.log}
	if err := src.sourceLists(ctx); err != nil {
		return "", "", err
	}
	out, err := src.run(ctx, dir, "apt-get", "-q", "source", "--print-uris", "busybox")
	if err != nil {
		return "", "", err
	}
	version, err = dscVersion(string(out))
	if err != nil {
		return "", "", err
	}
	build := filepath.Join(dir, version)
	bin = filepath.Join(build, "busybox")
	if _, err := os.Stat(bin); err == nil {
		return bin, version, nil
	}
	a.log("busybox %s: from Debian's source package, %s=y", version, busyboxOption)
	work := build + ".work"
	if err := os.RemoveAll(work); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", "", err
	}
	defer os.RemoveAll(work)
	// apt-get source downloads and unpacks with dpkg-source (patches
	// applied) into busybox-UPSTREAM/.
	if _, err := src.run(ctx, work, "apt-get", "-q", "source", "busybox"); err != nil {
		return "", "", err
	}
	trees, _ := filepath.Glob(filepath.Join(work, "busybox-*"))
	var tree string
	for _, t := range trees {
		if fi, err := os.Stat(t); err == nil && fi.IsDir() {
			tree = t
		}
	}
	if tree == "" || !exists(filepath.Join(work, "busybox_"+version+".dsc")) {
		return "", "", fmt.Errorf("apt-get source busybox: no source tree of %s in %s", version, work)
	}
	conf, err := os.ReadFile(filepath.Join(tree, "debian/config/pkg/static"))
	if err != nil {
		return "", "", fmt.Errorf("busybox's static configuration: %w", err)
	}
	off := "# " + busyboxOption + " is not set"
	if !strings.Contains(string(conf), off) {
		return "", "", fmt.Errorf("busybox %s: its static configuration has no %q", version, off)
	}
	conf = []byte(strings.Replace(string(conf), off, busyboxOption+"=y", 1))
	if err := os.WriteFile(filepath.Join(tree, ".config"), conf, 0o644); err != nil {
		return "", "", err
	}
	for _, args := range [][]string{{"oldconfig"}, {"-j" + strconv.Itoa(runtime.NumCPU()), "busybox"}} {
		cmd := exec.CommandContext(ctx, "make", args...)
		cmd.Dir = tree
		// oldconfig asks about options the configuration does not name:
		// their defaults.
		cmd.Stdin = strings.NewReader(strings.Repeat("\n", 2000))
		cmd.Env = append(os.Environ(), "LC_ALL=C", "KBUILD_BUILD_TIMESTAMP=@0", "KCONFIG_NOTIMESTAMP=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("busybox: make %s: %w\n%s", strings.Join(args, " "), err, tail(out, 2000))
		}
	}
	if err := os.MkdirAll(build, 0o755); err != nil {
		return "", "", err
	}
	if err := os.Rename(filepath.Join(tree, "busybox"), bin); err != nil {
		return "", "", err
	}
	return bin, version, nil
}

// sourceLists fetches deb-src package lists into a.dir, for the Debian
// sources the machine's apt has, unless they are less than a day old.
func (a *apt) sourceLists(ctx context.Context) error {
	parts := filepath.Join(a.dir, "sources.list.d")
	lists := filepath.Join(a.dir, "lists")
	for _, d := range []string{parts, filepath.Join(lists, "partial"), filepath.Join(a.dir, "archives", "partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(a.dir, "status"), nil, 0o644); err != nil {
		return err
	}
	a.extra = []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(a.dir, "sources.list"),
		"-o", "Dir::Etc::SourceParts=" + parts,
		"-o", "Dir::State::Lists=" + lists,
		"-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=",
	}
	if got, _ := filepath.Glob(filepath.Join(lists, "*_Sources*")); len(got) > 0 {
		if fi, err := os.Stat(got[0]); err == nil && time.Since(fi.ModTime()) < 24*time.Hour {
			return nil
		}
	}
	if err := debSources("/etc/apt", a.dir); err != nil {
		return err
	}
	a.log("apt-get update for Debian's sources")
	_, err := a.run(ctx, a.dir, "apt-get", "-q", "update")
	return err
}

// debSources writes into dir the machine's apt sources (etc: /etc/apt)
// as deb-src ones: sources.list's "deb" lines, and the deb822 files of
// sources.list.d with their Types.
func debSources(etc, dir string) error {
	var list []string
	if f, err := os.Open(filepath.Join(etc, "sources.list")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "deb "); ok {
				list = append(list, "deb-src "+rest)
			}
		}
		f.Close()
	}
	if err := os.WriteFile(filepath.Join(dir, "sources.list"), []byte(strings.Join(list, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	files, _ := filepath.Glob(filepath.Join(etc, "sources.list.d", "*.sources"))
	n := len(list)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var out []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "Types:") {
				line = "Types: deb-src"
				n++
			}
			out = append(out, line)
		}
		if err := os.WriteFile(filepath.Join(dir, "sources.list.d", filepath.Base(f)), []byte(strings.Join(out, "\n")), 0o644); err != nil {
			return err
		}
	}
	if n == 0 {
		return fmt.Errorf("no Debian source in %s/sources.list nor %s/sources.list.d/*.sources", etc, etc)
	}
	return nil
}

// dscVersion is the version (without its epoch) of the source package
// whose files apt-get source --print-uris printed: busybox_VERSION.dsc.
func dscVersion(out string) (string, error) {
	for _, f := range strings.Fields(out) {
		if name, ok := strings.CutSuffix(f, ".dsc"); ok && strings.HasPrefix(name, "busybox_") {
			return strings.TrimPrefix(name, "busybox_"), nil
		}
	}
	return "", fmt.Errorf("apt-get source --print-uris busybox: no .dsc in %q", tail([]byte(out), 300))
}

// tail is the end of b, at most n bytes.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

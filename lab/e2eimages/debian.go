package e2eimages

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
)

// debArchs are Debian's names of the architectures, by GOARCH.
var debArchs = map[string]string{
	"386": "i386", "amd64": "amd64", "arm": "armhf", "arm64": "arm64", "loong64": "loong64",
	"mips64le": "mips64el", "ppc64le": "ppc64el", "riscv64": "riscv64", "s390x": "s390x",
}

// deb is a package of a root filesystem, as apt resolved it.
type deb struct {
	Name, Version, Arch string
}

// File is the name apt-get download gives the package's file.
func (d deb) File() string {
	return fmt.Sprintf("%s_%s_%s.deb", d.Name, strings.ReplaceAll(d.Version, ":", "%3a"), d.Arch)
}

// apt runs apt's commands for one Debian architecture: the machine's own
// package lists for its own architecture; for another, lists of their own
// under the cache (apt-get update, once), so that the machine's dpkg is
// left as it is. Either way, packages resolve against an empty system
// (an empty dpkg status), so that a root filesystem gets every package
// it needs, not only those the machine lacks.
type apt struct {
	cache string
	arch  string // Debian's
	dir   string // the cache: status, lists, downloaded packages
	own   bool   // the machine's architecture
	debs  string // where downloaded packages are kept
	log   func(format string, args ...any)
	ready bool
	extra []string // more options (sourceLists')
}

func newApt(ctx context.Context, cache, goarch string, log func(string, ...any)) (*apt, error) {
	arch, ok := debArchs[goarch]
	if !ok {
		return nil, fmt.Errorf("no Debian architecture for GOARCH %q", goarch)
	}
	out, err := exec.CommandContext(ctx, "dpkg", "--print-architecture").Output()
	if err != nil {
		return nil, fmt.Errorf("dpkg --print-architecture: %w", err)
	}
	a := &apt{cache: cache, arch: arch, dir: filepath.Join(cache, "apt", arch), own: strings.TrimSpace(string(out)) == arch, log: log}
	a.debs = filepath.Join(a.dir, "debs")
	for _, d := range []string{a.debs, filepath.Join(a.dir, "lists", "partial"), filepath.Join(a.dir, "archives", "partial")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(a.dir, "status"), nil, 0o644); err != nil {
		return nil, err
	}
	return a, nil
}

// options are apt's options for a.
func (a *apt) options() []string {
	o := []string{
		"-o", "Dir::State::status=" + filepath.Join(a.dir, "status"),
		"-o", "Dir::Cache::archives=" + filepath.Join(a.dir, "archives"),
		"-o", "Debug::NoLocking=true",
	}
	if !a.own {
		o = append(o,
			"-o", "APT::Architecture="+a.arch,
			"-o", "APT::Architectures::="+a.arch,
			"-o", "Dir::State::Lists="+filepath.Join(a.dir, "lists"),
			"-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=")
	}
	return append(o, a.extra...)
}

func (a *apt) run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, append(a.options(), args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// update fetches another architecture's package lists, unless those
// of the cache are less than a day old.
func (a *apt) update(ctx context.Context) error {
	if a.own || a.ready {
		return nil
	}
	lists, _ := filepath.Glob(filepath.Join(a.dir, "lists", "*_Packages*"))
	for _, l := range lists {
		if fi, err := os.Stat(l); err == nil && time.Since(fi.ModTime()) < 24*time.Hour {
			a.ready = true
			return nil
		}
	}
	a.log("apt-get update for %s", a.arch)
	if _, err := a.run(ctx, a.dir, "apt-get", "-q", "update"); err != nil {
		return err
	}
	a.ready = true
	return nil
}

// resolve is the packages an install of pkgs brings on an empty system,
// without recommended packages. apt's answer is kept in the cache until
// the package lists change.
func (a *apt) resolve(ctx context.Context, pkgs []string) ([]deb, error) {
	if err := a.update(ctx); err != nil {
		return nil, err
	}
	key, err := a.listsKey(pkgs)
	if err != nil {
		return nil, err
	}
	kept := filepath.Join(a.dir, "resolved", key)
	out, err := os.ReadFile(kept)
	if err != nil {
		if out, err = a.run(ctx, a.dir, "apt-get", append([]string{"-s", "-q", "--no-install-recommends", "install"}, pkgs...)...); err != nil {
			return nil, err
		}
	}
	debs, err := parseSimulation(out)
	if err != nil {
		return nil, fmt.Errorf("apt-get install -s %s: %w", strings.Join(pkgs, " "), err)
	}
	if err := os.MkdirAll(filepath.Dir(kept), 0o755); err != nil {
		return nil, err
	}
	return debs, os.WriteFile(kept, out, 0o644)
}

// listsKey names a resolution of pkgs against the package lists as they
// are: their names, sizes and times, and pkgs.
func (a *apt) listsKey(pkgs []string) (string, error) {
	dir := "/var/lib/apt/lists"
	if !a.own {
		dir = filepath.Join(a.dir, "lists")
	}
	lists, err := filepath.Glob(filepath.Join(dir, "*_Packages*"))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintln(h, strings.Join(pkgs, " "))
	for _, l := range lists {
		fi, err := os.Stat(l)
		if err != nil {
			return "", err
		}
		fmt.Fprintln(h, l, fi.Size(), fi.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// instLine is a package in the output of apt-get -s install:
// "Inst libc6 (2.36-9+deb12u14 Debian-Security:12/stable-security [amd64])".
var instLine = regexp.MustCompile(`^Inst (\S+) (?:\[\S+\] )?\((\S+) .*\[(\S+)\]\)`)

// parseSimulation reads the packages apt-get -s install would install,
// sorted by name.
func parseSimulation(out []byte) ([]deb, error) {
	var debs []deb
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "Inst ") {
			continue
		}
		m := instLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("cannot read %q", line)
		}
		debs = append(debs, deb{Name: m[1], Version: m[2], Arch: m[3]})
	}
	if len(debs) == 0 {
		return nil, errors.New("no package to install")
	}
	slices.SortFunc(debs, func(a, b deb) int { return strings.Compare(a.Name, b.Name) })
	return debs, nil
}

// download fetches the packages not already in the cache.
func (a *apt) download(ctx context.Context, debs []deb) error {
	var missing []string
	for _, d := range debs {
		if _, err := os.Stat(filepath.Join(a.debs, d.File())); err != nil {
			missing = append(missing, d.Name+"="+d.Version)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	a.log("apt-get download: %d packages", len(missing))
	if _, err := a.run(ctx, a.debs, "apt-get", append([]string{"-q", "download"}, missing...)...); err != nil {
		return err
	}
	for _, d := range debs {
		if _, err := os.Stat(filepath.Join(a.debs, d.File())); err != nil {
			return fmt.Errorf("apt-get download: no %s: %w", d.File(), err)
		}
	}
	return nil
}

// rootfs is a root filesystem made of Debian packages.
type rootfs struct {
	name string
	pkgs []string
	// links are symbolic links that maintainer scripts would make
	// (alternatives: nc, awk), made when their target is there.
	links map[string]string
	// applets adds busybox's applets (busybox-static's).
	applets applets
	// ownBusybox replaces busybox-static's binary by one built from its
	// source (busybox.go), on this machine's architecture.
	ownBusybox bool
}

// applets says which of busybox's applets a root filesystem gets.
type applets int

const (
	noApplets      applets = iota
	missingApplets         // where the packages have no command of that name
	allApplets             // busybox alone
)

// extract makes the root filesystem fs in a directory of the cache and
// returns it, with the packages in it: each package unpacked (dpkg -x:
// no maintainer scripts), /bin, /sbin and /lib merged into /usr as
// Debian 12's images have them, what the scripts would have set up
// written instead. A root filesystem made of the same packages before is
// kept.
func (a *apt) extract(ctx context.Context, r rootfs) (string, []deb, error) {
	pkgs := r.pkgs
	if r.applets != noApplets && !slices.Contains(pkgs, "busybox-static") {
		pkgs = append(slices.Clone(pkgs), "busybox-static")
	}
	debs, err := a.resolve(ctx, pkgs)
	if err != nil {
		return "", nil, err
	}
	if err := a.download(ctx, debs); err != nil {
		return "", nil, err
	}
	dir := filepath.Join(a.dir, "rootfs", r.name)
	stamp := dir + ".made"
	var want strings.Builder
	for _, d := range debs {
		fmt.Fprintln(&want, d.File())
	}
	fmt.Fprintf(&want, "links %v applets %d version %d\n", r.links, r.applets, rootfsVersion)
	var busybox string
	if r.ownBusybox && a.own {
		bin, version, err := a.buildBusybox(ctx)
		if err != nil {
			return "", nil, err
		}
		busybox = bin
		fmt.Fprintf(&want, "busybox %s %s=y\n", version, busyboxOption)
	}
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want.String() {
		return dir, debs, nil
	}
	a.log("root filesystem %s: %d packages", r.name, len(debs))
	os.Remove(stamp)
	if err := os.RemoveAll(dir); err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	for _, d := range debs {
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", filepath.Join(a.debs, d.File()), dir).CombinedOutput(); err != nil {
			return "", nil, fmt.Errorf("dpkg-deb -x %s: %w: %s", d.File(), err, out)
		}
	}
	if err := slim(dir); err != nil {
		return "", nil, err
	}
	if err := mergeUsr(dir); err != nil {
		return "", nil, err
	}
	if err := setUp(dir, r.links); err != nil {
		return "", nil, err
	}
	if busybox != "" {
		b, err := os.ReadFile(busybox)
		if err != nil {
			return "", nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "usr/bin/busybox"), b, 0o755); err != nil {
			return "", nil, err
		}
	}
	if r.applets != noApplets {
		list, err := a.applets(ctx, dir)
		if err != nil {
			return "", nil, err
		}
		if err := addApplets(dir, list, r.applets == allApplets); err != nil {
			return "", nil, err
		}
	}
	if err := os.WriteFile(stamp, []byte(want.String()), 0o644); err != nil {
		return "", nil, err
	}
	return dir, debs, nil
}

// rootfsVersion changes when extract makes root filesystems otherwise,
// so that those made before are made again.
const rootfsVersion = 5

// slim removes documentation, manual pages and translations, as
// Debian's slim images do, keeping each package's copyright.
func slim(root string) error {
	for _, d := range []string{"usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian", "usr/share/linda"} {
		if err := os.RemoveAll(filepath.Join(root, d)); err != nil {
			return err
		}
	}
	docs := filepath.Join(root, "usr/share/doc")
	return filepath.WalkDir(docs, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == docs {
			return nil
		}
		if err != nil || p == docs {
			return err
		}
		if d.IsDir() {
			if filepath.Dir(p) == docs {
				return nil // a package's directory
			}
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			return filepath.SkipDir
		}
		if d.Name() == "copyright" && filepath.Dir(filepath.Dir(p)) == docs {
			return nil
		}
		return os.Remove(p)
	})
}

// mergeUsr moves /bin, /sbin and /lib* into /usr and links them there,
// as Debian 12's usrmerge does. Where a package shipped both a file of
// /bin and the same name in /usr/bin, a link gives way to a file.
func mergeUsr(root string) error {
	for _, d := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
		top := filepath.Join(root, d)
		info, err := os.Lstat(top)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && info.Mode()&fs.ModeSymlink != 0) {
			continue
		}
		if err != nil {
			return err
		}
		if err := moveInto(top, filepath.Join(root, "usr", d)); err != nil {
			return err
		}
		if err := os.RemoveAll(top); err != nil {
			return err
		}
		if err := os.Symlink("usr/"+d, top); err != nil {
			return err
		}
	}
	return nil
}

// moveInto moves what directory src holds into dst, merging directories.
func moveInto(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		fi, err := os.Lstat(from)
		if err != nil {
			return err
		}
		ti, err := os.Lstat(to)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Rename(from, to); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		case fi.IsDir() && ti.IsDir():
			if err := moveInto(from, to); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			// The /usr one stays.
		case ti.Mode()&fs.ModeSymlink != 0:
			if err := os.Remove(to); err != nil {
				return err
			}
			if err := os.Rename(from, to); err != nil {
				return err
			}
		default:
			return fmt.Errorf("merging /usr: %s and %s are both files", from, to)
		}
	}
	return nil
}

// setUp writes what maintainer scripts would have: /etc/passwd and
// /etc/group from base-passwd's masters, /etc/nsswitch.conf from
// base-files', /bin/sh (bash, else dash), and the links given, where
// their targets exist.
func setUp(root string, links map[string]string) error {
	for src, dst := range map[string]string{
		"usr/share/base-passwd/passwd.master": "etc/passwd",
		"usr/share/base-passwd/group.master":  "etc/group",
		"usr/share/base-files/nsswitch.conf":  "etc/nsswitch.conf",
		"usr/share/base-files/profile":        "etc/profile",
	} {
		data, err := os.ReadFile(filepath.Join(root, src))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, dst), data, 0o644); err != nil {
			return err
		}
	}
	// /bin/sh is bash where there is one: dash and Debian's busybox-static
	// ash drop environment variables whose names are not shell names
	// ("data-1"), which pods may be given and the suite's tests read back
	// through sh. Without bash nor dash, busybox's applets give it.
	sh := "dash"
	if exists(filepath.Join(root, "usr/bin/bash")) {
		sh = "bash"
	}
	all := map[string]string{"usr/bin/sh": sh}
	for l, t := range links {
		all[l] = t
	}
	for l, t := range all {
		at := filepath.Join(root, l)
		target := t
		if !filepath.IsAbs(t) {
			target = filepath.Join(filepath.Dir(at), t)
		} else {
			target = filepath.Join(root, t)
		}
		if _, err := os.Lstat(target); err != nil {
			continue // not in this root filesystem
		}
		if _, err := os.Lstat(at); err == nil {
			continue
		}
		if err := os.Symlink(t, at); err != nil {
			return err
		}
	}
	return nil
}

// applets are the paths of busybox's applets, as busybox --list-full
// names them ("bin/sh", "usr/bin/wget"): the root filesystem's busybox
// says, or, where this machine cannot run it (another architecture), a
// busybox-static of this machine's architecture does, which Debian
// builds with the same configuration.
func (a *apt) applets(ctx context.Context, root string) ([]string, error) {
	bb := filepath.Join(root, "usr/bin/busybox")
	out, err := exec.CommandContext(ctx, bb, "--list-full").Output()
	if err == nil {
		return strings.Fields(string(out)), nil
	}
	if a.own {
		return nil, fmt.Errorf("%s --list-full: %w", bb, err)
	}
	host, herr := newApt(ctx, a.cache, runtime.GOARCH, a.log)
	if herr != nil {
		return nil, herr
	}
	dir, _, herr := host.extract(ctx, rootfs{name: "busybox-list", pkgs: []string{"busybox-static"}})
	if herr != nil {
		return nil, herr
	}
	bb = filepath.Join(dir, "usr/bin/busybox")
	if out, err = exec.CommandContext(ctx, bb, "--list-full").Output(); err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", bb, err)
	}
	return strings.Fields(string(out)), nil
}

// addApplets links busybox's applets (list, as applets gives them) to
// /usr/bin/busybox; all of them, in /usr/bin (/bin), or only where the
// root filesystem has no file of that name in /usr/bin or /usr/sbin.
func addApplets(root string, list []string, all bool) error {
	for _, p := range list {
		p = filepath.Clean("/" + p)
		// /bin and /sbin are links into /usr.
		if rest, ok := strings.CutPrefix(p, "/bin/"); ok {
			p = "/usr/bin/" + rest
		} else if rest, ok := strings.CutPrefix(p, "/sbin/"); ok {
			p = "/usr/sbin/" + rest
		}
		if p == "/usr/bin/busybox" || p == "/linuxrc" {
			continue
		}
		if all {
			// The busybox image has every applet in /bin, sysctl
			// and ifconfig too, and the suite runs them there.
			p = "/usr/bin/" + filepath.Base(p)
		}
		if !all {
			name := filepath.Base(p)
			if exists(filepath.Join(root, "usr/bin", name)) || exists(filepath.Join(root, "usr/sbin", name)) {
				continue
			}
		}
		at := filepath.Join(root, p)
		if exists(at) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(at), 0o755); err != nil {
			return err
		}
		rel, err := filepath.Rel(filepath.Dir(p), "/usr/bin/busybox")
		if err != nil {
			return err
		}
		if err := os.Symlink(rel, at); err != nil {
			return err
		}
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

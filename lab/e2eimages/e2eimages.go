// Package e2eimages builds, without a registry, the container images
// that Kubernetes' end-to-end suite (at hepto's Kubernetes version)
// runs in its conformance tests, under the exact names the suite asks
// for, as OCI archives that hepto imports (STATE/images, hepto images
// import) or ctr images import reads.
//
// Each image is a rebuild: its programs built from Go source (agnhost,
// sample-apiserver, etcd, nnp, from the module third_party/e2eimages),
// its root filesystem made of Debian 12 packages (apt-get download, then
// dpkg-deb -x: no maintainer script runs), with what the upstream
// Dockerfile adds. Images lists them, with what each is a rebuild of.
//
//	Build(ctx, Options) []Built   every image into Options.Out, for Options.Arch
//
// Downloaded packages, root filesystems and programs are kept in
// Options.Cache, so that a second run only writes the archives again.
package e2eimages

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/hepto-net/hepto/k8s/images"
)

// Options say where and for what architecture images are built.
type Options struct {
	// Out is the directory of the archives, made if need be.
	Out string
	// Arch is the images' architecture, by its GOARCH name; the
	// machine's when empty.
	Arch string
	// Cache keeps Debian packages, root filesystems and programs
	// between runs; Out/.cache when empty.
	Cache string
	// Module is the directory of the Go module the programs are built
	// from (third_party/e2eimages in hepto's tree).
	Module string
	// Go is the go command; "go" when empty.
	Go string
	// Only, when not empty, names the images to build (by Image.Name).
	Only []string
	// Log gets a line per step; nothing when nil.
	Log io.Writer
}

// Built is an image written.
type Built struct {
	// Name is the image's full name, as the suite asks for it.
	Name string
	// Archive is the path of its OCI archive.
	Archive string
	// Source is what the image is a rebuild of, and from what.
	Source string
}

// Upstream names of the images, as test/utils/image/manifest.go of
// Kubernetes v1.37.2 gives them.
const (
	e2eRegistry = "registry.k8s.io/e2e-test-images/"

	Agnhost         = e2eRegistry + "agnhost:2.66.1"
	AgnhostPrev     = e2eRegistry + "agnhost:2.55"
	BusyBox         = e2eRegistry + "busybox:1.37.0-2"
	Nginx           = e2eRegistry + "nginx:1.27.0-2"
	NginxNew        = e2eRegistry + "nginx:1.28.0-2"
	Nonewprivs      = e2eRegistry + "nonewprivs:1.4"
	NonRoot         = e2eRegistry + "nonroot:1.5"
	Nautilus        = e2eRegistry + "nautilus:1.8"
	Kitten          = e2eRegistry + "kitten:1.8"
	GlibcDNSTesting = e2eRegistry + "glibc-dns-testing:2.1.1"
	SampleAPIServer = e2eRegistry + "sample-apiserver:1.29.2"
	Etcd            = "registry.k8s.io/etcd:3.7.0-0"
)

// The upstream sources of the programs.
const (
	kubernetesModule  = "k8s.io/kubernetes"
	kubernetesVersion = "v1.37.2"
)

// Root filesystems, of Debian 12 packages.
var (
	// debianPkgs are a small Debian: what debian-base and bookworm-slim
	// give the tests (a shell, coreutils, grep, sed, awk, getent), and
	// usr-is-merged, the lighter alternative to usrmerge (which brings
	// perl) for the packages that ask for either.
	debianPkgs = []string{"base-files", "base-passwd", "bash", "coreutils", "dash", "debianutils",
		"diffutils", "findutils", "grep", "gzip", "hostname", "libc-bin", "mawk", "sed", "tar", "usr-is-merged"}
	// debianLinks are the alternatives Debian's maintainer scripts make.
	debianLinks = map[string]string{
		"usr/bin/awk":    "mawk",
		"usr/bin/nawk":   "mawk",
		"usr/bin/which":  "which.debianutils",
		"usr/bin/nc":     "nc.openbsd",
		"usr/bin/netcat": "nc.openbsd",
	}

	// busybox's image: busybox built from Debian's source (busybox.go)
	// and its applets, sh among them.
	busyboxFS = rootfs{name: "busybox", pkgs: []string{"busybox-static"}, applets: allApplets, ownBusybox: true}
	debianFS  = rootfs{name: "debian", pkgs: debianPkgs, links: debianLinks}
	dnsFS     = rootfs{name: "dnsutils", pkgs: append(slices.Clone(debianPkgs), "bind9-dnsutils"), links: debianLinks}
	// toolsFS is agnhost's: the packages of its Dockerfile (apk add
	// bind-tools curl netcat-openbsd iproute2 iperf bash util-linux-misc
	// socat) by their Debian names, and busybox's applets for the
	// commands Alpine's busybox gives and these packages do not (wget).
	toolsFS = rootfs{name: "tools", pkgs: append(slices.Clone(debianPkgs),
		"bind9-dnsutils", "curl", "netcat-openbsd", "iproute2", "iperf", "util-linux", "socat", "iputils-ping"),
		links: debianLinks, applets: missingApplets}
	nginxFS = rootfs{name: "nginx", pkgs: append(slices.Clone(debianPkgs), "nginx"), links: debianLinks, applets: missingApplets}
)

// Build writes every image (or those of o.Only) into o.Out, each as
// NAME-TAG.tar (the last component of its name: agnhost-2.66.1.tar),
// and returns them in the order of Images.
func Build(ctx context.Context, o Options) ([]Built, error) {
	if o.Arch == "" {
		o.Arch = runtime.GOARCH
	}
	if o.Cache == "" {
		o.Cache = filepath.Join(o.Out, ".cache")
	}
	// Absolute: the programs are built from the module's directory.
	for _, p := range []*string{&o.Out, &o.Cache} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return nil, err
		}
		*p = abs
	}
	if o.Go == "" {
		o.Go = "go"
	}
	if o.Module == "" {
		return nil, errors.New("e2eimages: no module to build the programs from")
	}
	for _, n := range o.Only {
		if !slices.ContainsFunc(specs, func(s spec) bool { return s.name == n }) {
			return nil, fmt.Errorf("e2eimages: no image %s", n)
		}
	}
	for _, d := range []string{o.Out, o.Cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	b := &builder{o: o, trees: map[string]tree{}, progs: map[string][]byte{}}
	a, err := newApt(ctx, o.Cache, o.Arch, b.logf)
	if err != nil {
		return nil, err
	}
	b.apt = a
	var built []Built
	for _, s := range specs {
		if len(o.Only) > 0 && !slices.Contains(o.Only, s.name) {
			continue
		}
		img, source, err := s.make(ctx, b)
		if err != nil {
			return built, fmt.Errorf("image %s: %w", s.name, err)
		}
		img.Name, img.Arch = s.name, o.Arch
		if img.Labels == nil {
			img.Labels = map[string]string{}
		}
		img.Labels["org.opencontainers.image.description"] = "rebuild of " + s.name + ": " + source
		img.Labels["org.opencontainers.image.source"] = "https://github.com/hepto-net/hepto (lab/e2eimages)"
		path := filepath.Join(o.Out, ArchiveName(s.name))
		b.logf("writing %s", path)
		if err := writeArchive(path, img); err != nil {
			return built, err
		}
		built = append(built, Built{Name: s.name, Archive: path, Source: source})
	}
	return built, nil
}

// Images are the names of the images Build makes, in its order.
func Images() []string {
	var names []string
	for _, s := range specs {
		names = append(names, s.name)
	}
	return names
}

// ArchiveName is the file name of an image's archive: the last
// component of its name, its tag after a dash, ".tar".
func ArchiveName(name string) string {
	last := name[strings.LastIndex(name, "/")+1:]
	return strings.Replace(last, ":", "-", 1) + ".tar"
}

// writeArchive writes img at path, through a temporary file.
func writeArchive(path string, img images.Image) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	err = images.WriteArchive(f, img)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// builder holds what images share in one run: root filesystems and
// programs, each made once.
type builder struct {
	o     Options
	apt   *apt
	trees map[string]tree
	progs map[string][]byte
}

// tree is a root filesystem made.
type tree struct {
	dir  string
	debs []deb
}

func (b *builder) logf(format string, args ...any) {
	if b.o.Log != nil {
		fmt.Fprintf(b.o.Log, "e2e images: "+format+"\n", args...)
	}
}

// rootfs makes r once a run.
func (b *builder) rootfs(ctx context.Context, r rootfs) (tree, error) {
	if t, ok := b.trees[r.name]; ok {
		return t, nil
	}
	dir, debs, err := b.apt.extract(ctx, r)
	if err != nil {
		return tree{}, err
	}
	t := tree{dir: dir, debs: debs}
	b.trees[r.name] = t
	return t, nil
}

// packages names a tree's packages with their versions, for the
// images' sources: those asked for, not their dependencies.
func packages(t tree, r rootfs) string {
	var s []string
	for _, d := range t.debs {
		if slices.Contains(r.pkgs, d.Name) && !slices.Contains(debianPkgs, d.Name) || r.name == "debian" && slices.Contains(r.pkgs, d.Name) {
			s = append(s, d.Name+" "+d.Version)
		}
	}
	return strings.Join(s, ", ")
}

// spec is an image: its name, and how it is made.
type spec struct {
	name string
	make func(ctx context.Context, b *builder) (images.Image, string, error)
}

// pathEnv is the PATH of every image, as in Alpine's and Debian's.
const pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// dir is a directory of an image, owned by root.
func dir(p string, mode fs.FileMode) images.File {
	return images.File{Path: p, Mode: fs.ModeDir | mode}
}

// commonDirs are directories every image with a shell has.
var commonDirs = []images.File{
	dir("/tmp", 0o777|fs.ModeSticky), dir("/var/tmp", 0o777|fs.ModeSticky),
	dir("/root", 0o700), dir("/home", 0o755), dir("/run", 0o755),
}

var specs = []spec{
	{Agnhost, func(ctx context.Context, b *builder) (images.Image, string, error) {
		return b.agnhost(ctx, nil, nil)
	}},
	{AgnhostPrev, func(ctx context.Context, b *builder) (images.Image, string, error) {
		img, src, err := b.agnhost(ctx, nil, nil)
		return img, src + "; the same program as agnhost 2.66.1 (the suite only needs a second tag)", err
	}},
	{Nautilus, func(ctx context.Context, b *builder) (images.Image, string, error) {
		return b.agnhost(ctx, []string{"nautilus.jpg", "data.json"}, []string{"test-webserver"})
	}},
	{Kitten, func(ctx context.Context, b *builder) (images.Image, string, error) {
		return b.agnhost(ctx, []string{"kitten.jpg", "data.json"}, []string{"test-webserver"})
	}},
	{BusyBox, func(ctx context.Context, b *builder) (images.Image, string, error) {
		t, err := b.rootfs(ctx, busyboxFS)
		if err != nil {
			return images.Image{}, "", err
		}
		return images.Image{
				Tree: t.dir, Env: []string{pathEnv}, Cmd: []string{"sh"},
				Files: append(slices.Clone(commonDirs), busyboxEtc()...),
			},
			"busybox (Docker library image busybox:1.37.0): Debian's " + packages(t, busyboxFS) +
				" built from its source package with " + busyboxOption + "=y (environment names that are not shell names kept), its applets as links", nil
	}},
	{Nginx, func(ctx context.Context, b *builder) (images.Image, string, error) { return b.nginx(ctx) }},
	{NginxNew, func(ctx context.Context, b *builder) (images.Image, string, error) { return b.nginx(ctx) }},
	{Nonewprivs, func(ctx context.Context, b *builder) (images.Image, string, error) {
		t, err := b.rootfs(ctx, busyboxFS)
		if err != nil {
			return images.Image{}, "", err
		}
		nnp, err := b.program(ctx, "nnp", kubernetesModule+"/test/images/nonewprivs", "")
		if err != nil {
			return images.Image{}, "", err
		}
		return images.Image{
				Tree: t.dir, Env: []string{pathEnv}, Cmd: []string{"nnp"},
				Files: append(slices.Clone(commonDirs), append(busyboxEtc(),
					images.File{Path: "/usr/local/bin/nnp", Mode: 0o755 | fs.ModeSetuid | fs.ModeSetgid, Data: nnp})...),
			},
			"nonewprivs (Alpine 3.22 with nnp setuid): nnp from " + kubernetesModule + " " + kubernetesVersion +
				" (test/images/nonewprivs), setuid root, on the busybox image's root filesystem", nil
	}},
	{NonRoot, func(ctx context.Context, b *builder) (images.Image, string, error) {
		t, err := b.rootfs(ctx, debianFS)
		if err != nil {
			return images.Image{}, "", err
		}
		return images.Image{Tree: t.dir, Env: []string{pathEnv}, User: "1234", Cmd: []string{"bash"}, Files: slices.Clone(commonDirs)},
			"nonroot (debian-base bookworm, USER 1234): Debian 12 packages " + packages(t, debianFS) + ", user 1234", nil
	}},
	{GlibcDNSTesting, func(ctx context.Context, b *builder) (images.Image, string, error) {
		t, err := b.rootfs(ctx, dnsFS)
		if err != nil {
			return images.Image{}, "", err
		}
		return images.Image{Tree: t.dir, Env: []string{pathEnv}, Cmd: []string{"bash"}, Files: slices.Clone(commonDirs)},
			"glibc-dns-testing (debian:bookworm-slim with dnsutils and /coredns): Debian 12 packages of a small Debian and " +
				packages(t, dnsFS) + "; no /coredns", nil
	}},
	{SampleAPIServer, func(ctx context.Context, b *builder) (images.Image, string, error) {
		t, err := b.rootfs(ctx, busyboxFS)
		if err != nil {
			return images.Image{}, "", err
		}
		prog, err := b.program(ctx, "sample-apiserver", "k8s.io/sample-apiserver", "")
		if err != nil {
			return images.Image{}, "", err
		}
		return images.Image{
				Tree: t.dir, Env: []string{pathEnv}, Entrypoint: []string{"/sample-apiserver"},
				Files: append(slices.Clone(commonDirs), append(busyboxEtc(),
					images.File{Path: "/sample-apiserver", Mode: 0o755, Data: prog})...),
			},
			"sample-apiserver (Alpine with /sample-apiserver, built from k8s.io/sample-apiserver v0.29.2): " +
				"k8s.io/sample-apiserver v0.37.2, on the busybox image's root filesystem", nil
	}},
	{Etcd, func(ctx context.Context, b *builder) (images.Image, string, error) {
		prog, err := b.program(ctx, "etcd", "go.etcd.io/etcd/server/v3", "")
		if err != nil {
			return images.Image{}, "", err
		}
		return images.Image{
				Env: []string{pathEnv}, Cmd: []string{"/usr/local/bin/etcd"},
				Files: []images.File{
					dir("/tmp", 0o777|fs.ModeSticky), dir("/var/etcd", 0o700),
					{Path: "/usr/local/bin/etcd", Mode: 0o755, Data: prog},
				},
			},
			"etcd 3.7.0 (registry.k8s.io/etcd, distroless): go.etcd.io/etcd/server/v3 v3.7.0, the etcd " +
				kubernetesModule + " " + kubernetesVersion + " requires, as /usr/local/bin/etcd alone (no etcdctl, etcdutl, migrate)", nil
	}},
}

// busyboxEtc are the users and groups of the busybox image, as in the
// Docker library's busybox.
func busyboxEtc() []images.File {
	return []images.File{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(`root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`)},
		{Path: "/etc/group", Mode: 0o644, Data: []byte(`root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
`)},
		{Path: "/etc/nsswitch.conf", Mode: 0o644, Data: []byte("hosts: files dns\nnetworks: files\npasswd: files\ngroup: files\n")},
	}
}

package images

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// layerOf writes img and returns its file system (its layers' entries,
// those of a layer over those of the layers below) with their names, its
// config and its layers' digests.
func layerOf(t *testing.T, img Image) (map[string]tarEntry, []string, imageConfig, []string) {
	t.Helper()
	var b bytes.Buffer
	if err := WriteArchive(&b, img); err != nil {
		t.Fatal(err)
	}
	entries, _ := readTarOwned(t, b.Bytes())
	var idx index
	decodeJSON(t, "index.json", entries["index.json"].data, &idx)
	var m manifest
	decodeJSON(t, "manifest", blob(t, entries, idx.Manifests[0]), &m)
	var c imageConfig
	decodeJSON(t, "config", blob(t, entries, m.Config), &c)
	files := map[string]tarEntry{}
	var names, digests []string
	for i, l := range m.Layers {
		if c.RootFS.DiffIDs[i] != l.Digest {
			t.Errorf("layer %d: digest %s, diff_id %s", i, l.Digest, c.RootFS.DiffIDs[i])
		}
		digests = append(digests, l.Digest)
		lf, ln := readTarOwned(t, blob(t, entries, l))
		for _, n := range ln {
			if _, ok := files[n]; !ok {
				names = append(names, n)
			}
			files[n] = lf[n]
		}
	}
	if len(c.RootFS.DiffIDs) != len(m.Layers) {
		t.Errorf("%d diff_ids for %d layers", len(c.RootFS.DiffIDs), len(m.Layers))
	}
	return files, names, c, digests
}

// readTarOwned reads a whole tar, refusing entries given twice, without
// the owner check of readTar: layers may hold
// files owned by others than root.
func readTarOwned(t *testing.T, b []byte) (map[string]tarEntry, []string) {
	t.Helper()
	entries := map[string]tarEntry{}
	var names []string
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries, names
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		var data bytes.Buffer
		if _, err := data.ReadFrom(tr); err != nil {
			t.Fatal(err)
		}
		if _, ok := entries[hdr.Name]; ok {
			t.Fatalf("%s twice in the tar", hdr.Name)
		}
		if !hdr.ModTime.Equal(epoch) || hdr.Uname != "" || hdr.Gname != "" {
			t.Errorf("%s: time %v, owner names %q:%q", hdr.Name, hdr.ModTime, hdr.Uname, hdr.Gname)
		}
		entries[hdr.Name] = tarEntry{hdr, data.Bytes()}
		names = append(names, hdr.Name)
	}
}

// wantEntry checks one entry of a layer.
func wantEntry(t *testing.T, files map[string]tarEntry, name string, typ byte, mode int64, uid, gid int, link, data string) {
	t.Helper()
	e, ok := files[name]
	if !ok {
		t.Errorf("layer: no %s", name)
		return
	}
	h := e.hdr
	if h.Typeflag != typ || h.Mode != mode || h.Uid != uid || h.Gid != gid || h.Linkname != link || string(e.data) != data {
		t.Errorf("layer: %s is type %c mode %o owner %d:%d link %q data %q; want %c %o %d:%d %q %q",
			name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, e.data, typ, mode, uid, gid, link, data)
	}
}

func TestWriteArchiveTypes(t *testing.T) {
	img := Image{
		Name:   "example.com/base:1",
		Arch:   "amd64",
		Labels: map[string]string{"org.opencontainers.image.description": "a test"},
		Files: []File{
			{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
			{Path: "/home/user", Mode: fs.ModeDir | 0o700, UID: 1000, GID: 1000},
			{Path: "/home/user/.profile", Mode: 0o644, Data: []byte("x"), UID: 1000, GID: 1000},
			{Path: "/bin/sh", Mode: fs.ModeSymlink | 0o755, Link: "busybox"},
			{Path: "/bin/busybox", Mode: 0o755, Data: []byte("bb")},
			{Path: "/lib64", Mode: fs.ModeSymlink, Link: "/usr/lib64"},
		},
	}
	files, names, c, _ := layerOf(t, img)
	wantEntry(t, files, "tmp/", tar.TypeDir, 0o1777, 0, 0, "", "")
	wantEntry(t, files, "home/", tar.TypeDir, 0o755, 0, 0, "", "")
	wantEntry(t, files, "home/user/", tar.TypeDir, 0o700, 1000, 1000, "", "")
	wantEntry(t, files, "home/user/.profile", tar.TypeReg, 0o644, 1000, 1000, "", "x")
	wantEntry(t, files, "bin/", tar.TypeDir, 0o755, 0, 0, "", "")
	wantEntry(t, files, "bin/sh", tar.TypeSymlink, 0o777, 0, 0, "busybox", "")
	wantEntry(t, files, "bin/busybox", tar.TypeReg, 0o755, 0, 0, "", "bb")
	wantEntry(t, files, "lib64", tar.TypeSymlink, 0o777, 0, 0, "/usr/lib64", "")
	if len(names) != 8 {
		t.Errorf("layer holds %q, want 8 entries", names)
	}
	if c.Config.Labels["org.opencontainers.image.description"] != "a test" || len(c.Config.Labels) != 1 {
		t.Errorf("config labels %v", c.Config.Labels)
	}
}

// makeTree writes a small root filesystem under dir.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"usr/bin", "etc", "var/mail", "tmp"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(os.Chmod(filepath.Join(dir, "tmp"), 0o777|fs.ModeSticky))
	must(os.Chmod(filepath.Join(dir, "var/mail"), 0o775|fs.ModeSetgid))
	must(os.WriteFile(filepath.Join(dir, "usr/bin/busybox"), []byte("busybox"), 0o755))
	must(os.Link(filepath.Join(dir, "usr/bin/busybox"), filepath.Join(dir, "usr/bin/wget")))
	must(os.Link(filepath.Join(dir, "usr/bin/busybox"), filepath.Join(dir, "usr/bin/ash")))
	must(os.Symlink("usr/bin", filepath.Join(dir, "bin")))
	must(os.Symlink("busybox", filepath.Join(dir, "usr/bin/sh")))
	must(os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "etc/hostname"), []byte("tree\n"), 0o644))
}

func TestWriteArchiveTree(t *testing.T) {
	dir := t.TempDir()
	makeTree(t, dir)
	root := os.Geteuid() == 0
	if root {
		if err := os.Lchown(filepath.Join(dir, "var/mail"), 0, 8); err != nil {
			t.Fatal(err)
		}
	}
	img := Image{
		Name: "example.com/tree:1",
		Arch: "amd64",
		Tree: dir,
		Files: []File{
			{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/:/bin/sh\n")},
			{Path: "/app/run", Mode: 0o755, Data: []byte("run")},
			{Path: "/usr/bin/app", Mode: 0o755, Data: []byte("app")},
			{Path: "/tmp", Mode: fs.ModeDir | 0o700},
			{Path: "/var/mail/root", Mode: 0o600},
		},
	}
	files, names, _, digests := layerOf(t, img)
	uid, gid := os.Geteuid(), os.Getegid()
	wantEntry(t, files, "bin", tar.TypeSymlink, 0o777, uid, gid, "usr/bin", "")
	wantEntry(t, files, "usr/bin/ash", tar.TypeReg, 0o755, uid, gid, "", "busybox")
	wantEntry(t, files, "usr/bin/busybox", tar.TypeLink, 0o755, uid, gid, "usr/bin/ash", "")
	wantEntry(t, files, "usr/bin/wget", tar.TypeLink, 0o755, uid, gid, "usr/bin/ash", "")
	wantEntry(t, files, "usr/bin/sh", tar.TypeSymlink, 0o777, uid, gid, "busybox", "")
	wantEntry(t, files, "usr/bin/app", tar.TypeReg, 0o755, 0, 0, "", "app")
	wantEntry(t, files, "etc/passwd", tar.TypeReg, 0o644, 0, 0, "", string(img.Files[0].Data))
	wantEntry(t, files, "etc/hostname", tar.TypeReg, 0o644, uid, gid, "", "tree\n")
	wantEntry(t, files, "app/", tar.TypeDir, 0o755, 0, 0, "", "")
	wantEntry(t, files, "app/run", tar.TypeReg, 0o755, 0, 0, "", "run")
	wantEntry(t, files, "tmp/", tar.TypeDir, 0o700, 0, 0, "", "")
	mailGID := func() int {
		if root {
			return 8
		}
		return gid
	}
	wantEntry(t, files, "var/mail/", tar.TypeDir, 0o2775, uid, mailGID(), "", "")
	wantEntry(t, files, "var/mail/root", tar.TypeReg, 0o600, 0, 0, "", "")
	if len(names) != 17 {
		t.Errorf("layers hold %d entries, want 17: %q", len(names), names)
	}

	// The tree's layer, then the files'.
	if len(digests) != 2 {
		t.Fatalf("layers %v, want the tree's and the files'", digests)
	}
	treeOnly := img
	treeOnly.Files = nil
	if _, _, _, d := layerOf(t, treeOnly); !slices.Equal(d, digests[:1]) {
		t.Errorf("the tree alone: layers %v; with files: %v, whose first should be the tree's", d, digests)
	}
	// The files' parent directories that the tree has keep its mode.
	wantEntry(t, files, "var/mail/", tar.TypeDir, 0o2775, uid, mailGID(), "", "")
	// The same tree, again: the same layers.
	if _, _, _, again := layerOf(t, img); !slices.Equal(again, digests) {
		t.Errorf("a tree written twice: layers %v and %v", digests, again)
	}
	// The layer's temporary file is gone.
	left, _ := filepath.Glob(filepath.Join(os.TempDir(), "hepto-layer-*"))
	for _, l := range left {
		t.Errorf("temporary layer %s left behind", l)
	}
}

// TestWriteArchiveTreeAsFiles: a tree without hard links gives the layer
// that the same files given in memory give.
func TestWriteArchiveTreeAsFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tree's files must be owned by root")
	}
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755))
	must(os.Mkdir(filepath.Join(dir, "tmp"), 0o755))
	must(os.Chmod(filepath.Join(dir, "tmp"), 0o777|fs.ModeSticky))
	must(os.WriteFile(filepath.Join(dir, "usr/bin/busybox"), []byte("bb"), 0o755))
	must(os.Symlink("usr/bin", filepath.Join(dir, "bin")))
	_, _, _, fromTree := layerOf(t, Image{Name: "a:1", Arch: "amd64", Tree: dir})
	_, _, _, fromFiles := layerOf(t, Image{Name: "a:1", Arch: "amd64", Files: []File{
		{Path: "/usr/bin/busybox", Mode: 0o755, Data: []byte("bb")},
		{Path: "/bin", Mode: fs.ModeSymlink, Link: "usr/bin"},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}})
	if !slices.Equal(fromTree, fromFiles) || len(fromTree) != 1 {
		t.Errorf("layer from a tree %v, from the same files %v", fromTree, fromFiles)
	}
}

func TestWriteArchiveTreeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []File
		tree  func(t *testing.T, dir string)
		want  string
	}{
		{"file over a directory", []File{{Path: "/etc", Mode: 0o644}}, nil, "replace a directory"},
		{"file under a link", []File{{Path: "/bin/app", Mode: 0o755}}, nil, "not a directory in tree"},
		{"file under a file", []File{{Path: "/etc/hostname/x", Mode: 0o644}}, nil, "not a directory in tree"},
		{"fifo", nil, func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "neither a regular file"},
		{"missing tree", nil, func(t *testing.T, dir string) { os.RemoveAll(dir) }, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "root")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			makeTree(t, dir)
			if tc.tree != nil {
				tc.tree(t, dir)
			}
			var b bytes.Buffer
			err := WriteArchive(&b, Image{Name: "a:1", Arch: "amd64", Tree: dir, Files: tc.files})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
			if b.Len() != 0 {
				t.Errorf("%d bytes written for a refused image", b.Len())
			}
		})
	}
}

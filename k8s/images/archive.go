// Package images builds container images in Go alone, as OCI image
// archives that containerd imports (ctr images import, or its client's
// Import) and docker loads, and holds hepto's built-in images: the pause
// (sandbox) image, whose program is a few hundred bytes of machine code
// made here rather than pulled from a registry.
package images

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// File is a regular file, a directory or a symbolic link of an image.
// Its parent directories, unless given too (or found in the image's
// Tree), are made in the layer with mode 0755, owned by root.
type File struct {
	// Path is absolute and clean: "/pause", "/etc/app/config".
	Path string
	// Mode is the file's permissions, with setuid, setgid and sticky
	// bits if wanted, and its type: no type bit for a regular file,
	// fs.ModeDir for a directory, fs.ModeSymlink for a symbolic link
	// (whose permissions are not kept: a link is 0777).
	Mode fs.FileMode
	// Data is a regular file's contents; directories and links have none.
	Data []byte
	// Link is a symbolic link's target, kept as given ("busybox",
	// "/usr/bin/x"); only symbolic links have one.
	Link string
	// UID and GID own the file; zero (root) unless set.
	UID, GID int
}

// Image is an image for Linux: one layer of Files, or with a Tree, the
// tree's layer and one of Files on top of it.
type Image struct {
	// Name is the full reference with a tag, such as
	// "registry.k8s.io/pause:3.10.2". The archive's index names the
	// image by it (annotation io.containerd.image.name) and by its tag
	// (org.opencontainers.image.ref.name).
	Name string
	// Arch is the architecture, by its GOARCH name: "amd64", "arm64".
	Arch       string
	Entrypoint []string
	Cmd        []string
	Env        []string
	// User is the image config's user ("uid", "uid:gid"), empty for root.
	User string
	// Labels are the image config's labels, such as what the image is
	// a rebuild of.
	Labels map[string]string
	Files  []File
	// Tree, if not empty, is a directory on disk whose contents are the
	// image's root filesystem, in a layer of their own, with Files in a
	// second layer on top: a File replaces what the tree has at its
	// path, and images of one tree share its layer (containerd keeps it
	// once). Regular files, directories, symbolic links and hard links
	// (kept as links) are taken with their modes and owners; times are
	// the epoch. A tree with anything else in it (a device, a socket, a
	// fifo) is refused. The tree is read when the archive is written,
	// and must not change meanwhile.
	Tree string
}

// Media types and annotations of the archive.
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"

	AnnotationImageName = "io.containerd.image.name"
	AnnotationRefName   = "org.opencontainers.image.ref.name"
)

// archs are the architectures images may be for, by their GOARCH names,
// which are also their OCI names.
var archs = []string{"386", "amd64", "arm", "arm64", "loong64", "mips64le", "ppc64le", "riscv64", "s390x"}

// WriteArchive writes img to w as an OCI image archive: a tar of an OCI
// image layout (oci-layout, index.json, blobs/sha256/) whose index holds
// img's manifest, plus the manifest.json of docker's own format, which
// is all older versions of docker load read (containerd reads the OCI
// layout when there is one). The same img always gives the same bytes: entries are
// sorted, times are the epoch, owners are root.
//
// The layer is an uncompressed tar: its digest is then its diff_id, and
// it does not depend on a compressor whose output may change between Go
// versions; archives are imported from local files, where compressing
// would only cost time.
func WriteArchive(w io.Writer, img Image) error {
	if err := img.validate(); err != nil {
		return err
	}
	layers, err := img.layers()
	for _, l := range layers {
		defer l.close()
	}
	if err != nil {
		return err
	}
	var layerDescs []descriptor
	var diffIDs, layerPaths []string
	for _, l := range layers {
		layerDescs = append(layerDescs, l.desc)
		diffIDs = append(diffIDs, l.desc.Digest)
		layerPaths = append(layerPaths, blobPath(l.desc.Digest))
	}

	configBlob, err := json.Marshal(imageConfig{
		Architecture: img.Arch,
		OS:           "linux",
		Config: execConfig{
			User:       img.User,
			Entrypoint: img.Entrypoint,
			Cmd:        img.Cmd,
			Env:        img.Env,
			Labels:     img.Labels,
		},
		RootFS: rootFS{Type: "layers", DiffIDs: diffIDs},
	})
	if err != nil {
		return err
	}
	configDesc := describe(MediaTypeConfig, configBlob)

	manifestBlob, err := json.Marshal(manifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeManifest,
		Config:        configDesc,
		Layers:        layerDescs,
	})
	if err != nil {
		return err
	}
	manifestDesc := describe(MediaTypeManifest, manifestBlob)
	manifestDesc.Platform = &platform{Architecture: img.Arch, OS: "linux"}
	manifestDesc.Annotations = map[string]string{
		AnnotationImageName: img.Name,
		AnnotationRefName:   tagOf(img.Name),
	}

	indexBlob, err := json.Marshal(index{
		SchemaVersion: 2,
		MediaType:     MediaTypeIndex,
		Manifests:     []descriptor{manifestDesc},
	})
	if err != nil {
		return err
	}
	dockerBlob, err := json.Marshal([]dockerManifest{{
		Config:   blobPath(configDesc.Digest),
		RepoTags: []string{img.Name},
		Layers:   layerPaths,
	}})
	if err != nil {
		return err
	}

	files := map[string][]byte{
		"oci-layout":                  []byte(`{"imageLayoutVersion":"1.0.0"}`),
		"index.json":                  indexBlob,
		"manifest.json":               dockerBlob,
		blobPath(configDesc.Digest):   configBlob,
		blobPath(manifestDesc.Digest): manifestBlob,
	}
	entries := []entry{
		{path: "blobs", typ: tar.TypeDir, mode: 0o755},
		{path: "blobs/sha256", typ: tar.TypeDir, mode: 0o755},
	}
	written := map[string]bool{}
	for _, l := range layers {
		if !written[l.desc.Digest] {
			written[l.desc.Digest] = true
			entries = append(entries, entry{path: blobPath(l.desc.Digest), typ: tar.TypeReg, mode: 0o644, data: l.data, src: l.file, size: l.desc.Size})
		}
	}
	for p, data := range files {
		entries = append(entries, entry{path: p, typ: tar.TypeReg, mode: 0o644, data: data})
	}
	return writeTar(w, entries)
}

// validate refuses what WriteArchive cannot write, or would write wrong.
func (img *Image) validate() error {
	if err := validateName(img.Name); err != nil {
		return err
	}
	if img.Arch == "" {
		return fmt.Errorf("image %s: no architecture", img.Name)
	}
	if !slices.Contains(archs, img.Arch) {
		return fmt.Errorf("image %s: unknown architecture %q", img.Name, img.Arch)
	}
	// byPath holds the files' modes; a file is given once.
	byPath := make(map[string]fs.FileMode, len(img.Files))
	for _, f := range img.Files {
		if err := validatePath(f.Path); err != nil {
			return fmt.Errorf("image %s: %w", img.Name, err)
		}
		if err := f.validateType(); err != nil {
			return fmt.Errorf("image %s: file %s: %w", img.Name, f.Path, err)
		}
		if f.UID < 0 || f.GID < 0 {
			return fmt.Errorf("image %s: file %s: owner %d:%d", img.Name, f.Path, f.UID, f.GID)
		}
		if _, ok := byPath[f.Path]; ok {
			return fmt.Errorf("image %s: file %s given twice", img.Name, f.Path)
		}
		byPath[f.Path] = f.Mode
	}
	// Only a directory can hold files: not a regular file, nor a link
	// (which the layer's reader would follow, or refuse).
	for _, f := range img.Files {
		for dir := path.Dir(f.Path); dir != "/"; dir = path.Dir(dir) {
			if m, ok := byPath[dir]; ok && !m.IsDir() {
				return fmt.Errorf("image %s: file %s is in %s, which is a file", img.Name, f.Path, dir)
			}
		}
	}
	return nil
}

// validateType checks that f is a regular file, a directory or a
// symbolic link, with what that type needs and nothing else.
func (f *File) validateType() error {
	perms := fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
	switch f.Mode &^ perms {
	case 0:
		if f.Link != "" {
			return errors.New("a link target for a regular file")
		}
	case fs.ModeDir:
		if len(f.Data) > 0 || f.Link != "" {
			return errors.New("a directory with contents or a link target")
		}
	case fs.ModeSymlink:
		if f.Link == "" || len(f.Data) > 0 {
			return errors.New("a symbolic link needs a target and no contents")
		}
		if strings.ContainsRune(f.Link, 0) {
			return errors.New("a symbolic link target with a NUL")
		}
	default:
		return fmt.Errorf("mode %v is not that of a regular file, a directory or a symbolic link", f.Mode)
	}
	return nil
}

// validateName checks that name is a reference with a tag and no digest:
// [host[:port]/]path:tag.
func validateName(name string) error {
	if name == "" {
		return errors.New("image without a name")
	}
	if strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return fmt.Errorf("image name %q: spaces or control characters", name)
	}
	if strings.Contains(name, "@") {
		return fmt.Errorf("image name %q: a digest, where a tag is wanted", name)
	}
	repo, tag, ok := strings.Cut(name[strings.LastIndex(name, "/")+1:], ":")
	if !ok {
		return fmt.Errorf("image name %q: no tag", name)
	}
	if repo == "" || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
		return fmt.Errorf("image name %q: empty path component", name)
	}
	if !validTag(tag) {
		return fmt.Errorf("image name %q: tag %q is not [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", name, tag)
	}
	return nil
}

func validTag(tag string) bool {
	if tag == "" || len(tag) > 128 || tag[0] == '.' || tag[0] == '-' {
		return false
	}
	for _, c := range []byte(tag) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// tagOf is the tag of a name validateName accepted.
func tagOf(name string) string {
	_, tag, _ := strings.Cut(name[strings.LastIndex(name, "/")+1:], ":")
	return tag
}

// validatePath checks that p is absolute, clean and not the root.
func validatePath(p string) error {
	switch {
	case p == "":
		return errors.New("file without a path")
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("file %q: path is not absolute", p)
	case p == "/":
		return errors.New("file at /, which is the root directory")
	case path.Clean(p) != p:
		// Catches .., ., // and a trailing slash.
		return fmt.Errorf("file %q: path is not clean (it would be %q)", p, path.Clean(p))
	}
	return nil
}

// layer is an image's layer: in memory (data), or in a temporary file
// when it is made from a tree, which can be large.
type layer struct {
	desc descriptor
	data []byte
	file string
}

func (l *layer) close() {
	if l.file != "" {
		os.Remove(l.file)
	}
}

// layers writes img's layers: the tree's if it has one, then that of its
// files and their parent directories, unless a tree without files makes
// it empty. A parent directory that the tree has keeps the tree's mode
// and owner; others are 0755, owned by root.
func (img *Image) layers() ([]*layer, error) {
	var layers []*layer
	if img.Tree != "" {
		if err := checkOverTree(img.Tree, img.Files); err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		entries, err := treeEntries(img.Tree)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		l, err := tempLayer(entries)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		layers = append(layers, l)
		if len(img.Files) == 0 {
			return layers, nil
		}
	}
	seen := map[string]bool{}
	for _, f := range img.Files {
		if f.Mode.IsDir() {
			seen[strings.TrimPrefix(f.Path, "/")] = true
		}
	}
	var entries []entry
	for _, f := range img.Files {
		rel := strings.TrimPrefix(f.Path, "/")
		for dir := path.Dir(rel); dir != "." && !seen[dir]; dir = path.Dir(dir) {
			seen[dir] = true
			e := entry{path: dir, typ: tar.TypeDir, mode: 0o755}
			if img.Tree != "" {
				if te, ok, err := treeEntry(img.Tree, dir); err != nil {
					return layers, err
				} else if ok {
					e = te
				}
			}
			entries = append(entries, e)
		}
		e := entry{path: rel, mode: f.Mode, uid: f.UID, gid: f.GID}
		switch {
		case f.Mode.IsDir():
			e.typ = tar.TypeDir
		case f.Mode&fs.ModeSymlink != 0:
			e.typ, e.link, e.mode = tar.TypeSymlink, f.Link, 0o777
		default:
			e.typ, e.data = tar.TypeReg, f.Data
		}
		entries = append(entries, e)
	}
	var b bytes.Buffer
	if err := writeTar(&b, entries); err != nil {
		return layers, err
	}
	return append(layers, &layer{desc: describe(MediaTypeLayer, b.Bytes()), data: b.Bytes()}), nil
}

// tempLayer writes a layer of entries to a temporary file, hashing it on
// the way.
func tempLayer(entries []entry) (*layer, error) {
	f, err := os.CreateTemp("", "hepto-layer-*.tar")
	if err != nil {
		return nil, err
	}
	l := &layer{file: f.Name()}
	h := sha256.New()
	n := &countWriter{w: io.MultiWriter(f, h)}
	err = writeTar(n, entries)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		l.close()
		return nil, err
	}
	l.desc = descriptor{MediaType: MediaTypeLayer, Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Size: n.n}
	return l, nil
}

// countWriter counts what it writes.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// entry is a file, directory or link of a tar.
type entry struct {
	path     string // relative, without a trailing slash
	typ      byte   // tar.TypeReg, TypeDir, TypeSymlink or TypeLink
	mode     fs.FileMode
	uid, gid int
	link     string // a symbolic link's target; a hard link's entry path
	data     []byte // a regular file's contents, unless src
	src      string // a file on disk whose contents are the entry's
	size     int64  // of src
}

// name is e's name in a tar: its path, with a slash after a directory's.
func (e entry) name() string {
	if e.typ == tar.TypeDir {
		return e.path + "/"
	}
	return e.path
}

// writeTar writes entries sorted by name, so that directories come
// before what they hold, with the times at the epoch. Entries are owned
// by root unless they say otherwise; owners go by number alone.
func writeTar(w io.Writer, entries []entry) error {
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name(), b.name()) })
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{
			Typeflag: e.typ,
			Name:     e.name(),
			Mode:     tarMode(e.mode),
			Uid:      e.uid,
			Gid:      e.gid,
			ModTime:  time.Unix(0, 0),
			Format:   tar.FormatPAX,
		}
		switch e.typ {
		case tar.TypeReg:
			h.Size = int64(len(e.data))
			if e.src != "" {
				h.Size = e.size
			}
		case tar.TypeSymlink, tar.TypeLink:
			h.Linkname = e.link
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if e.src != "" {
			if err := copyFile(tw, e.src, e.size); err != nil {
				return err
			}
			continue
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// copyFile copies the file at name, which must have size bytes, to w.
func copyFile(w io.Writer, name string, size int64) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size+1))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if n != size {
		return fmt.Errorf("%s: %d bytes, %d when listed: it changed", name, n, size)
	}
	return nil
}

// tarMode is the tar header mode of a file's mode.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

func describe(mediaType string, blob []byte) descriptor {
	sum := sha256.Sum256(blob)
	return descriptor{
		MediaType: mediaType,
		Digest:    "sha256:" + hex.EncodeToString(sum[:]),
		Size:      int64(len(blob)),
	}
}

// blobPath is where the blob of digest ("sha256:...") is in the layout.
func blobPath(digest string) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
}

// The JSON documents of the OCI image spec, with the fields used here.
type (
	descriptor struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
		Platform    *platform         `json:"platform,omitempty"`
	}
	platform struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	}
	index struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}
	manifest struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}
	imageConfig struct {
		Architecture string     `json:"architecture"`
		OS           string     `json:"os"`
		Config       execConfig `json:"config"`
		RootFS       rootFS     `json:"rootfs"`
	}
	execConfig struct {
		User       string            `json:"User,omitempty"`
		Entrypoint []string          `json:"Entrypoint,omitempty"`
		Cmd        []string          `json:"Cmd,omitempty"`
		Env        []string          `json:"Env,omitempty"`
		Labels     map[string]string `json:"Labels,omitempty"`
	}
	rootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	}
	// dockerManifest is an entry of docker's manifest.json.
	dockerManifest struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
)

// ProgramArchive writes, as file, the archive of an image named name
// holding one static program, prog, at /NAME-OF-PROG, run with args.
func ProgramArchive(file, name, prog string, args ...string) error {
	b, err := os.ReadFile(prog)
	if err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	path := "/" + filepath.Base(prog)
	err = WriteArchive(f, Image{Name: name, Arch: runtime.GOARCH, Entrypoint: []string{path}, Cmd: args,
		Files: []File{{Path: path, Mode: 0o755, Data: b}}})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

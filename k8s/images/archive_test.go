package images

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"
)

var epoch = time.Unix(0, 0)

// tarEntry is an entry of a tar read back.
type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

// readTar reads a whole tar, refusing entries given twice, and wants
// every entry owned by root; names are in the order read.
func readTar(t *testing.T, b []byte) (map[string]tarEntry, []string) {
	t.Helper()
	entries, names := readTarOwned(t, b)
	for _, name := range names {
		if hdr := entries[name].hdr; hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: owner %d:%d, want 0:0", name, hdr.Uid, hdr.Gid)
		}
	}
	return entries, names
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// blob checks that desc's blob is in the archive with its digest and
// size, and returns it.
func blob(t *testing.T, entries map[string]tarEntry, desc descriptor) []byte {
	t.Helper()
	e, ok := entries[blobPath(desc.Digest)]
	if !ok {
		t.Fatalf("no blob %s for %s", desc.Digest, desc.MediaType)
	}
	if got := digestOf(e.data); got != desc.Digest {
		t.Errorf("blob %s has digest %s", desc.Digest, got)
	}
	if int64(len(e.data)) != desc.Size {
		t.Errorf("blob %s: %d bytes, descriptor says %d", desc.Digest, len(e.data), desc.Size)
	}
	return e.data
}

func decodeJSON(t *testing.T, what string, b []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, b)
	}
}

func testImage() Image {
	return Image{
		Name:       "example.com:5000/team/app:v1.2-rc.3",
		Arch:       "arm64",
		Entrypoint: []string{"/bin/app", "--serve"},
		Cmd:        []string{"--port", "80"},
		Env:        []string{"PATH=/bin", "MODE=test"},
		User:       "1000:1000",
		Files: []File{
			{Path: "/bin/app", Mode: 0o755, Data: []byte("\x7fELF not really")},
			{Path: "/etc/app/app.conf", Mode: 0o640, Data: []byte("port = 80\n")},
			{Path: "/etc/app/empty", Mode: 0o600},
			{Path: "/usr/bin/su", Mode: 0o755 | fs.ModeSetuid, Data: []byte("su")},
			{Path: "/tmp-files", Mode: 0o644 | fs.ModeSticky, Data: []byte("x")},
		},
	}
}

func TestWriteArchive(t *testing.T) {
	img := testImage()
	var b bytes.Buffer
	if err := WriteArchive(&b, img); err != nil {
		t.Fatal(err)
	}
	entries, names := readTar(t, b.Bytes())
	if !slices.IsSorted(names) {
		t.Errorf("archive entries not sorted: %q", names)
	}

	var layout struct {
		ImageLayoutVersion string `json:"imageLayoutVersion"`
	}
	decodeJSON(t, "oci-layout", entries["oci-layout"].data, &layout)
	if layout.ImageLayoutVersion != "1.0.0" {
		t.Errorf("oci-layout version %q", layout.ImageLayoutVersion)
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if e, ok := entries[dir]; !ok || e.hdr.Typeflag != tar.TypeDir {
			t.Errorf("no directory %s", dir)
		}
	}

	var idx index
	decodeJSON(t, "index.json", entries["index.json"].data, &idx)
	if idx.SchemaVersion != 2 || idx.MediaType != MediaTypeIndex || len(idx.Manifests) != 1 {
		t.Fatalf("index: %+v", idx)
	}
	mdesc := idx.Manifests[0]
	if mdesc.MediaType != MediaTypeManifest {
		t.Errorf("manifest media type %q", mdesc.MediaType)
	}
	if mdesc.Annotations[AnnotationImageName] != img.Name || mdesc.Annotations[AnnotationRefName] != "v1.2-rc.3" || len(mdesc.Annotations) != 2 {
		t.Errorf("manifest annotations %v", mdesc.Annotations)
	}
	if mdesc.Platform == nil || *mdesc.Platform != (platform{Architecture: "arm64", OS: "linux"}) {
		t.Errorf("manifest platform %+v", mdesc.Platform)
	}

	var m manifest
	decodeJSON(t, "manifest", blob(t, entries, mdesc), &m)
	if m.SchemaVersion != 2 || m.MediaType != MediaTypeManifest || m.Config.MediaType != MediaTypeConfig || len(m.Layers) != 1 || m.Layers[0].MediaType != MediaTypeLayer {
		t.Fatalf("manifest: %+v", m)
	}

	var c imageConfig
	decodeJSON(t, "config", blob(t, entries, m.Config), &c)
	layer := blob(t, entries, m.Layers[0])
	want := imageConfig{
		Architecture: "arm64",
		OS:           "linux",
		Config:       execConfig{User: img.User, Entrypoint: img.Entrypoint, Cmd: img.Cmd, Env: img.Env},
		RootFS:       rootFS{Type: "layers", DiffIDs: []string{digestOf(layer)}},
	}
	gotJSON, _ := json.Marshal(c)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("config:\n%s\nwant\n%s", gotJSON, wantJSON)
	}

	// The layer, read as the uncompressed tar its diff_id says it is.
	files, names := readTar(t, layer)
	if !slices.IsSorted(names) {
		t.Errorf("layer entries not sorted: %q", names)
	}
	wantDirs := []string{"bin/", "etc/", "etc/app/", "usr/", "usr/bin/"}
	wantModes := map[string]int64{
		"bin/app": 0o755, "etc/app/app.conf": 0o640, "etc/app/empty": 0o600,
		"usr/bin/su": 0o4755, "tmp-files": 0o1644,
	}
	if len(files) != len(wantDirs)+len(wantModes) {
		t.Errorf("layer has %q, want %q and the files %v", names, wantDirs, wantModes)
	}
	for _, dir := range wantDirs {
		if e, ok := files[dir]; !ok || e.hdr.Typeflag != tar.TypeDir || e.hdr.Mode != 0o755 {
			t.Errorf("layer: no directory %s with mode 0755", dir)
		}
	}
	for _, f := range img.Files {
		name := strings.TrimPrefix(f.Path, "/")
		e, ok := files[name]
		if !ok {
			t.Errorf("layer: no %s", name)
			continue
		}
		if e.hdr.Typeflag != tar.TypeReg || e.hdr.Mode != wantModes[name] || !bytes.Equal(e.data, f.Data) {
			t.Errorf("layer: %s is type %c mode %o with %q, want a file of mode %o with %q", name, e.hdr.Typeflag, e.hdr.Mode, e.data, wantModes[name], f.Data)
		}
	}

	// Docker's manifest.json, for older versions of docker load.
	var dm []dockerManifest
	decodeJSON(t, "manifest.json", entries["manifest.json"].data, &dm)
	if len(dm) != 1 || dm[0].Config != blobPath(m.Config.Digest) || !slices.Equal(dm[0].RepoTags, []string{img.Name}) || !slices.Equal(dm[0].Layers, []string{blobPath(m.Layers[0].Digest)}) {
		t.Errorf("manifest.json: %+v", dm)
	}

	// Nothing else.
	wantNames := []string{"blobs/", "blobs/sha256/", blobPath(mdesc.Digest), blobPath(m.Config.Digest), blobPath(m.Layers[0].Digest), "index.json", "manifest.json", "oci-layout"}
	slices.Sort(wantNames)
	if !slices.Equal(sortedNames(entries), wantNames) {
		t.Errorf("archive holds %q, want %q", sortedNames(entries), wantNames)
	}
}

func sortedNames(entries map[string]tarEntry) []string {
	var n []string
	for name := range entries {
		n = append(n, name)
	}
	slices.Sort(n)
	return n
}

func TestWriteArchiveDeterministic(t *testing.T) {
	write := func(img Image) []byte {
		t.Helper()
		var b bytes.Buffer
		if err := WriteArchive(&b, img); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	first := write(testImage())
	if second := write(testImage()); !bytes.Equal(first, second) {
		t.Error("two writes of one image differ")
	}
	reversed := testImage()
	slices.Reverse(reversed.Files)
	if !bytes.Equal(first, write(reversed)) {
		t.Error("the order of the files changes the archive")
	}
	other := testImage()
	other.Files[0].Data = []byte("other")
	if bytes.Equal(first, write(other)) {
		t.Error("other contents, same archive")
	}
}

func TestWriteArchiveRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Image)
		want   string
	}{
		{"empty name", func(i *Image) { i.Name = "" }, "without a name"},
		{"no tag", func(i *Image) { i.Name = "example.com:5000/app" }, "no tag"},
		{"digest", func(i *Image) { i.Name = "app:v1@sha256:0000" }, "digest"},
		{"bad tag", func(i *Image) { i.Name = "app:-v1" }, "tag"},
		{"space", func(i *Image) { i.Name = "app: v1" }, "spaces"},
		{"empty component", func(i *Image) { i.Name = "example.com//app:v1" }, "empty path component"},
		{"no arch", func(i *Image) { i.Arch = "" }, "no architecture"},
		{"unknown arch", func(i *Image) { i.Arch = "x86_64" }, "unknown architecture"},
		{"empty path", func(i *Image) { i.Files[0].Path = "" }, "without a path"},
		{"relative path", func(i *Image) { i.Files[0].Path = "bin/app" }, "not absolute"},
		{"dot dot", func(i *Image) { i.Files[0].Path = "/bin/../app" }, "not clean"},
		{"dot dot at the root", func(i *Image) { i.Files[0].Path = "/../app" }, "not clean"},
		{"dot", func(i *Image) { i.Files[0].Path = "/bin/./app" }, "not clean"},
		{"trailing slash", func(i *Image) { i.Files[0].Path = "/bin/app/" }, "not clean"},
		{"root", func(i *Image) { i.Files[0].Path = "/" }, "root directory"},
		{"duplicate", func(i *Image) { i.Files[1].Path = i.Files[0].Path }, "given twice"},
		{"file as directory", func(i *Image) { i.Files[1].Path = "/bin/app/conf" }, "which is a file"},
		{"directory with contents", func(i *Image) { i.Files[0].Mode = fs.ModeDir | 0o755 }, "directory with contents"},
		{"link without target", func(i *Image) { i.Files[2].Mode = fs.ModeSymlink | 0o777 }, "needs a target"},
		{"link with contents", func(i *Image) { i.Files[0].Mode, i.Files[0].Link = fs.ModeSymlink, "x" }, "needs a target"},
		{"target of a file", func(i *Image) { i.Files[0].Link = "/bin/other" }, "link target for a regular file"},
		{"device", func(i *Image) { i.Files[2].Mode = fs.ModeDevice | 0o600 }, "not that of a regular file, a directory"},
		{"fifo", func(i *Image) { i.Files[2].Mode = fs.ModeNamedPipe | 0o600 }, "not that of a regular file, a directory"},
		{"negative owner", func(i *Image) { i.Files[0].UID = -1 }, "owner"},
		{"file under a link", func(i *Image) {
			i.Files = append(i.Files, File{Path: "/lib", Mode: fs.ModeSymlink, Link: "usr/lib"}, File{Path: "/lib/x", Mode: 0o644})
		}, "which is a file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage()
			tc.change(&img)
			var b bytes.Buffer
			err := WriteArchive(&b, img)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
			if b.Len() != 0 {
				t.Errorf("%d bytes written for a refused image", b.Len())
			}
		})
	}
}

// Package registry is a read-only container registry for the lab, which
// reaches no real one: it serves the images of OCI archives (as
// k8s/images and lab/e2eimages write them) over the pull side of the OCI
// distribution API, byte for byte, so that a pulled image has the digest
// of the imported one. Nodes use it as a mirror (STATE/registries).
package registry

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/reference"

	"github.com/hepto-net/hepto/k8s/images"
)

// Registry serves the images of the archives it was given.
type Registry struct {
	log   *slog.Logger
	mu    sync.Mutex
	files []*os.File
	blobs map[string]blob   // digest → where it is
	tags  map[string]string // "HOST/REPO:TAG" → manifest digest
	types map[string]string // manifest digest → media type
	// Served counts the bytes of content sent (manifests and blobs).
	Served atomic.Int64
}

// blob is a file's section: an entry of an archive.
type blob struct {
	f         *os.File
	off, size int64
	mediaType string
}

// New returns an empty registry; Add gives it images.
func New(log *slog.Logger) *Registry {
	if log == nil {
		log = slog.Default()
	}
	return &Registry{log: log, blobs: map[string]blob{}, tags: map[string]string{}, types: map[string]string{}}
}

// index is an OCI archive's index.json, what is read of it.
type index struct {
	Manifests []struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Annotations map[string]string `json:"annotations"`
	} `json:"manifests"`
}

// Add serves the images of an OCI archive under the names of its index
// (annotation io.containerd.image.name). The file stays open until Close.
func (r *Registry) Add(archive string) (names []string, err error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	blobs := map[string]blob{}
	var idx *index
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", archive, err)
		}
		name := path.Clean(h.Name)
		switch {
		case name == "index.json":
			idx = new(index)
			if err := json.NewDecoder(tr).Decode(idx); err != nil {
				return nil, fmt.Errorf("%s: index.json: %w", archive, err)
			}
		case strings.HasPrefix(name, "blobs/") && h.Typeflag == tar.TypeReg:
			// archive/tar reads no further than the header: the file's
			// offset is where the entry's data starts.
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			alg, hex, _ := strings.Cut(strings.TrimPrefix(name, "blobs/"), "/")
			blobs[alg+":"+hex] = blob{f: f, off: off, size: h.Size}
		}
	}
	if idx == nil {
		return nil, fmt.Errorf("%s: no index.json: not an OCI archive", archive)
	}
	tags := map[string]string{}
	for _, m := range idx.Manifests {
		b, ok := blobs[m.Digest]
		if !ok {
			return nil, fmt.Errorf("%s: manifest %s is not in the archive", archive, m.Digest)
		}
		b.mediaType = m.MediaType
		blobs[m.Digest] = b
		ref, err := reference.ParseNormalizedNamed(m.Annotations[images.AnnotationImageName])
		if err != nil {
			return nil, fmt.Errorf("%s: image name: %w", archive, err)
		}
		tagged, ok := ref.(reference.Tagged)
		if !ok {
			return nil, fmt.Errorf("%s: image %s has no tag", archive, ref)
		}
		tags[reference.Domain(ref)+"/"+reference.Path(ref)+":"+tagged.Tag()] = m.Digest
		names = append(names, ref.String())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files = append(r.files, f)
	for d, b := range blobs {
		r.blobs[d] = b
		if b.mediaType != "" {
			r.types[d] = b.mediaType
		}
	}
	for t, d := range tags {
		r.tags[t] = d
	}
	return names, nil
}

// Serve answers on ln until stop, which also closes the archives.
func (r *Registry) Serve(ln net.Listener) (stop func()) {
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return func() {
		srv.Close()
		r.Close()
	}
}

// Close closes the archives.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, f := range r.files {
		errs = append(errs, f.Close())
	}
	r.files = nil
	return errors.Join(errs...)
}

// ServeHTTP answers /v2/ (the API check), /v2/REPO/manifests/REF and
// /v2/REPO/blobs/DIGEST. A mirror is asked with ?ns=HOST, the registry the
// image is named after; without it, HOST is docker.io.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		apiError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this registry is read-only")
		return
	}
	p := strings.TrimPrefix(req.URL.Path, "/v2/")
	if p == "" {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
		return
	}
	host := req.URL.Query().Get("ns")
	if host == "" {
		host = "docker.io"
	}
	var repo, kind, ref string
	for _, k := range []string{"/manifests/", "/blobs/"} {
		if i := strings.LastIndex(p, k); i > 0 {
			repo, kind, ref = p[:i], strings.Trim(k, "/"), p[i+len(k):]
			break
		}
	}
	r.mu.Lock()
	digest := ref
	if kind == "manifests" && !strings.Contains(ref, ":") {
		digest = r.tags[host+"/"+repo+":"+ref]
	}
	b, ok := r.blobs[digest]
	mediaType := r.types[digest]
	r.mu.Unlock()
	switch {
	case kind == "":
		apiError(w, http.StatusNotFound, "UNSUPPORTED", "not an API path")
		return
	case !ok && kind == "manifests":
		apiError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", fmt.Sprintf("%s/%s:%s is not here", host, repo, ref))
		return
	case !ok:
		apiError(w, http.StatusNotFound, "BLOB_UNKNOWN", ref+" is not here")
		return
	case kind == "manifests" && mediaType == "":
		apiError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", ref+" is not a manifest")
		return
	}
	if mediaType == "" {
		mediaType = "application/octet-stream"
	}
	r.log.Debug("registry", "method", req.Method, "host", host, "repo", repo, kind, ref)
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Content-Length", strconv.FormatInt(b.size, 10))
	if req.Method == http.MethodHead {
		return
	}
	n, _ := io.Copy(w, io.NewSectionReader(b.f, b.off, b.size))
	r.Served.Add(n)
}

// apiError writes an error the way the distribution API has them.
func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// HostsTOML is containerd's configuration of registry host, hosts.toml in
// REGISTRIES/HOST/, that sends its pulls to mirror (a URL: "http://…" for
// this plain-HTTP registry) first.
func HostsTOML(host, mirror string) string {
	return fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", "https://"+host, mirror)
}

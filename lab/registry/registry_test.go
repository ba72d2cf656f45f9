package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/hepto-net/hepto/k8s/images"
)

// An image written by k8s/images is pulled back from the registry byte for
// byte: its manifest by tag (as a mirror is asked: ?ns=HOST) and by digest,
// its config and layers by digest, each matching its digest.
func TestPull(t *testing.T) {
	archive := filepath.Join(t.TempDir(), "hello.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	img := images.Image{Name: "registry.k8s.io/e2e-test-images/hello:1.0", Arch: "amd64", Cmd: []string{"/hello"},
		Files: []images.File{{Path: "/hello", Mode: 0o755, Data: []byte("#!/bin/sh\necho hello\n")}}}
	if err := images.WriteArchive(f, img); err != nil {
		t.Fatal(err)
	}
	f.Close()

	r := New(nil)
	defer r.Close()
	names, err := r.Add(archive)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != img.Name {
		t.Fatalf("names %v, want %s", names, img.Name)
	}
	srv := httptest.NewServer(r)
	defer srv.Close()

	get := func(method, path string, want int) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %s %s, want %d", method, path, resp.Status, b, want)
		}
		return resp, b
	}
	check := func(digest string, b []byte) {
		t.Helper()
		sum := sha256.Sum256(b)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
			t.Errorf("content of %s has digest %s", digest, got)
		}
	}

	get("GET", "/v2/", 200)
	resp, b := get("GET", "/v2/e2e-test-images/hello/manifests/1.0?ns=registry.k8s.io", 200)
	digest := resp.Header.Get("Docker-Content-Digest")
	check(digest, b)
	if ct := resp.Header.Get("Content-Type"); ct != images.MediaTypeManifest {
		t.Errorf("manifest served as %q", ct)
	}
	resp, _ = get("HEAD", "/v2/e2e-test-images/hello/manifests/"+digest+"?ns=registry.k8s.io", 200)
	if resp.Header.Get("Docker-Content-Digest") != digest {
		t.Errorf("HEAD by digest: %v", resp.Header)
	}
	var m struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	if err := json.Unmarshal(b, &m); err != nil || len(m.Layers) == 0 {
		t.Fatalf("manifest %s: %v", b, err)
	}
	for _, d := range append([]string{m.Config.Digest}, m.Layers[0].Digest) {
		_, blob := get("GET", "/v2/e2e-test-images/hello/blobs/"+d, 200)
		check(d, blob)
	}

	// What is not there, or not asked right, is a clear error.
	get("GET", "/v2/e2e-test-images/hello/manifests/1.0", 404) // docker.io's, not registry.k8s.io's
	get("GET", "/v2/e2e-test-images/hello/manifests/2.0?ns=registry.k8s.io", 404)
	get("GET", "/v2/e2e-test-images/hello/blobs/sha256:00", 404)
	get("PUT", "/v2/e2e-test-images/hello/manifests/1.0", 405)
	if _, err := r.Add(filepath.Join(t.TempDir(), "missing.tar")); err == nil {
		t.Error("a missing archive added")
	}
	notOCI := filepath.Join(t.TempDir(), "empty.tar")
	os.WriteFile(notOCI, make([]byte, 1024), 0o644)
	if _, err := r.Add(notOCI); err == nil {
		t.Error("an archive without index.json added")
	}
}

package imageshare

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepto-net/hepto/control"
)

func TestWriteHosts(t *testing.T) {
	dir := t.TempDir()
	user, out := filepath.Join(dir, "registries"), filepath.Join(dir, "effective")
	const mirror = "http://127.0.0.1:9655"
	// No user configuration at all: _default alone.
	if err := WriteHosts(user, out, mirror); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "_default", "hosts.toml"))
	if err != nil || !strings.Contains(string(b), `[host."`+mirror+`"]`) || !strings.Contains(string(b), `capabilities = ["pull"]`) {
		t.Fatalf("_default: %q %v", b, err)
	}
	// A registry of the user's, with its mirror and a certificate.
	reg := filepath.Join(user, "registry.example")
	os.MkdirAll(reg, 0o755)
	os.WriteFile(filepath.Join(reg, "hosts.toml"), []byte("server = \"https://registry.example\"\n\n[host.\"http://mirror.example:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"ca.crt\"\n"), 0o644)
	os.WriteFile(filepath.Join(reg, "ca.crt"), []byte("CERT"), 0o644)
	if err := WriteHosts(user, out, mirror); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(out, "registry.example", "hosts.toml"))
	s := string(got)
	server, ours, theirs := strings.Index(s, "server ="), strings.Index(s, mirror), strings.Index(s, "mirror.example")
	if server < 0 || ours < 0 || theirs < 0 || !(server < ours && ours < theirs) {
		t.Errorf("hosts.toml: want the server key, then the nodes' mirror, then the user's:\n%s", s)
	}
	if b, err := os.ReadFile(filepath.Join(out, "registry.example", "ca.crt")); err != nil || string(b) != "CERT" {
		t.Errorf("certificate beside it: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(out, "_default", "hosts.toml")); err != nil {
		t.Errorf("_default: %v", err)
	}
	// Removed by the user: gone from the configuration.
	os.RemoveAll(reg)
	if err := WriteHosts(user, out, mirror); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "registry.example")); !os.IsNotExist(err) {
		t.Errorf("a removed registry's configuration stays: %v", err)
	}
}

func TestWithMirror(t *testing.T) {
	section := "[host.\"M\"]\n"
	for in, want := range map[string]string{
		"":                               "\n[host.\"M\"]\n",
		"server = \"https://r\"":         "server = \"https://r\"\n\n[host.\"M\"]\n",
		"server = \"x\"\n[host.\"A\"]\n": "server = \"x\"\n[host.\"M\"]\n[host.\"A\"]\n",
	} {
		if got := string(withMirror([]byte(in), section)); got != want {
			t.Errorf("withMirror(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMirrorPath(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for path, ok := range map[string]bool{
		"/v2/library/web/blobs/" + d:     true,
		"/v2/web/manifests/" + d:         true,
		"/v2/web/manifests/latest":       false,
		"/v2/web/blobs/sha256:abc":       false,
		"/v2/web/blobs/" + d + "/../etc": false,
		"/blobs/" + d:                    false,
	} {
		if got := mirrorPathRE.MatchString(path); got != ok {
			t.Errorf("%s: %v, want %v", path, got, ok)
		}
	}
	s := New(Options{Content: t.TempDir()})
	for _, bad := range []string{"sha256:../../etc/passwd", "md5:abc", ""} {
		if _, err := s.open(bad); err == nil {
			t.Errorf("open(%q) accepted", bad)
		}
	}
}

// Who waits for whom: anchors first, then by name; never both ways.
func TestBefore(t *testing.T) {
	anchor, a, b := Peer{Name: "z", Anchor: true}, Peer{Name: "home-a"}, Peer{Name: "home-b"}
	if !before(anchor, a) || before(a, anchor) || !before(a, b) || before(b, a) || before(a, a) {
		t.Error("before is not a strict order with anchors first")
	}
}

// Content goes to members' hepto only: an unsigned call (a pod, a host on
// the LAN, a process on the node) gets none, even of content the node holds.
func TestServeBlobUnsigned(t *testing.T) {
	dir := t.TempDir()
	hex := strings.Repeat("ab", 32)
	os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755)
	os.WriteFile(filepath.Join(dir, "blobs", "sha256", hex), []byte("secret layer"), 0o644)
	s := New(Options{Content: dir})
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		w := httptest.NewRecorder()
		s.ServeBlob(w, httptest.NewRequest(method, control.PathBlobs+"sha256:"+hex, nil))
		if w.Code == http.StatusOK || strings.Contains(w.Body.String(), "secret layer") {
			t.Errorf("%s unsigned: %d %q, want a refusal", method, w.Code, w.Body.String())
		}
	}
}

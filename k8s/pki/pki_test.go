package pki

import (
	"bytes"
	"crypto/x509"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func verify(t *testing.T, ca *CA, kp *KeyPair, usage x509.ExtKeyUsage, name string) {
	t.Helper()
	opts := x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{usage}, DNSName: name}
	if _, err := kp.Cert.Verify(opts); err != nil {
		t.Fatalf("%s (%q) does not verify: %v", kp.Cert.Subject.CommonName, name, err)
	}
}

func TestIssue(t *testing.T) {
	dir := t.TempDir()
	p, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}

	srv, err := p.APIServerServing(addrs("10.42.0.1", "fd42::1"), []netip.Prefix{netip.MustParsePrefix("10.43.0.0/16"), netip.MustParsePrefix("fd43::/108")})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.42.0.1", "fd42::1", "127.0.0.1", "::1", "10.43.0.1", "fd43::1"} {
		verify(t, p.Cluster, srv, x509.ExtKeyUsageServerAuth, n)
	}
	if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: p.Cluster.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("the serving certificate is also a client certificate")
	}
	if err := srv.Cert.VerifyHostname("10.42.0.2"); err == nil {
		t.Error("serving certificate valid for an address it was not given")
	}

	clients := []struct {
		name   string
		issue  func() (*KeyPair, error)
		cn     string
		groups []string
	}{
		{"admin", p.Admin, AdminUser, []string{"system:masters"}},
		{"controller-manager", p.ControllerManager, "system:kube-controller-manager", nil},
		{"scheduler", p.Scheduler, "system:kube-scheduler", nil},
		{"kubelet", func() (*KeyPair, error) { return issue(p.Cluster)(KubeletClient("pi-kitchen")) }, "system:node:pi-kitchen", []string{"system:nodes"}},
	}
	for _, c := range clients {
		kp, err := c.issue()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		verify(t, p.Cluster, kp, x509.ExtKeyUsageClientAuth, "")
		if kp.Cert.Subject.CommonName != c.cn || !slices.Equal(kp.Cert.Subject.Organization, c.groups) {
			t.Errorf("%s: subject %v, want CN=%s O=%v", c.name, kp.Cert.Subject, c.cn, c.groups)
		}
		if slices.Contains(kp.Cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
			t.Errorf("%s: client certificate can serve", c.name)
		}
		if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: p.FrontProxy.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
			t.Errorf("%s: verifies against the front-proxy CA", c.name)
		}
	}

	ks, err := issue(p.Cluster)(KubeletServing("pi-kitchen", addrs("10.42.0.5", "fd42::5")))
	if err != nil {
		t.Fatal(err)
	}
	verify(t, p.Cluster, ks, x509.ExtKeyUsageServerAuth, "10.42.0.5")
	verify(t, p.Cluster, ks, x509.ExtKeyUsageServerAuth, "fd42::5")
	if len(ks.Cert.IPAddresses) != 2 {
		t.Errorf("kubelet serving certificate addresses %v, want the node's two", ks.Cert.IPAddresses)
	}

	fp, err := p.FrontProxyClient()
	if err != nil {
		t.Fatal(err)
	}
	verify(t, p.FrontProxy, fp, x509.ExtKeyUsageClientAuth, "")

	es, err := p.EtcdServer("etcd", nil)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, p.Etcd, es, x509.ExtKeyUsageServerAuth, "127.0.0.1")
	if _, err := es.Cert.Verify(x509.VerifyOptions{Roots: p.Cluster.Pool()}); err == nil {
		t.Error("etcd certificate verifies against the cluster CA")
	}

	if _, err := KubeletClient(""); err == nil {
		t.Error("kubelet certificate without a node name")
	}
}

func TestFileModes(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ca.key", "front-proxy-ca.key", "etcd-ca.key", "sa.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := a.Admin()
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]*CA{{a.Cluster, b.Cluster}, {a.FrontProxy, b.FrontProxy}, {a.Etcd, b.Etcd}} {
		if !pair[0].Cert.Equal(pair[1].Cert) || !samePublic(pair[0].Key.Public(), pair[1].Key.Public()) {
			t.Errorf("CA %s changed on reload", pair[0].Cert.Subject.CommonName)
		}
	}
	if !samePublic(a.SAKey.Public(), b.SAKey.Public()) {
		t.Error("service-account key changed on reload")
	}
	// A certificate issued before the reload verifies with the reloaded CA.
	verify(t, b.Cluster, kp, x509.ExtKeyUsageClientAuth, "")
}

func TestCorrupt(t *testing.T) {
	for _, f := range []string{"ca.crt", "ca.key", "sa.key", "etcd-ca.crt"} {
		t.Run(f, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := LoadOrCreate(dir); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, f)
			if err := os.WriteFile(path, []byte("-----BEGIN garbage\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreate(dir)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("got %v, want an error naming %s as corrupt", err, path)
			}
			if b, _ := os.ReadFile(path); string(b) != "-----BEGIN garbage\n" {
				t.Error("the corrupt file was overwritten")
			}
		})
	}
	t.Run("missing key", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := LoadOrCreate(dir); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, "ca.key"))
		if _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("got %v, want an error about the missing key", err)
		}
	})
	t.Run("mismatched key", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := LoadOrCreate(dir); err != nil {
			t.Fatal(err)
		}
		other, _ := os.ReadFile(filepath.Join(dir, "etcd-ca.key"))
		os.WriteFile(filepath.Join(dir, "ca.key"), other, 0o600)
		if _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Fatalf("got %v, want a mismatch error", err)
		}
	})
}

func TestServiceIP(t *testing.T) {
	for in, want := range map[string]string{"10.43.0.0/16": "10.43.0.1", "fd43::/108": "fd43::1", "10.43.5.7/16": "10.43.0.1"} {
		got, err := ServiceIP(netip.MustParsePrefix(in))
		if err != nil || got.String() != want {
			t.Errorf("ServiceIP(%s) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := ServiceIP(netip.MustParsePrefix("10.0.0.1/32")); err == nil {
		t.Error("a /32 has room for the kubernetes service")
	}
}

// issue issues a request's certificate with a new key.
func issue(ca *CA) func(Request, error) (*KeyPair, error) {
	return func(req Request, err error) (*KeyPair, error) {
		if err != nil {
			return nil, err
		}
		return ca.Issue(req)
	}
}

// TestSecretsKeys: keys one a line, the first encrypting, written 0600
// and read back in order; a file that is not keys is an error naming it,
// and stays.
func TestSecretsKeys(t *testing.T) {
	dir := t.TempDir()
	p, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.SecretsKeys) != 1 || len(p.SecretsKeys[0]) != 32 {
		t.Fatalf("a new PKI's Secrets keys: %d", len(p.SecretsKeys))
	}
	k, err := NewSecretsKey()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{k, p.SecretsKeys[0]}
	if err := WriteSecretsKeys(dir, want); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, SecretsKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets.key: %v %v, want 0600", fi.Mode(), err)
	}
	got, err := ReadSecretsKeys(dir)
	if err != nil || len(got) != 2 || !bytes.Equal(got[0], k) || !bytes.Equal(got[1], want[1]) {
		t.Fatalf("read back %d keys (%v), want the two written, in order", len(got), err)
	}
	if err := WriteSecretsKeys(dir, [][]byte{k[:16]}); err == nil {
		t.Error("a 16-byte key was written")
	}
	for _, bad := range []string{"", "not base64!\n", "AAAA\n"} {
		path := filepath.Join(dir, SecretsKeyFile)
		os.WriteFile(path, []byte(bad), 0o600)
		if _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("secrets.key %q: %v, want an error naming it", bad, err)
		}
		if b, _ := os.ReadFile(path); string(b) != bad {
			t.Errorf("secrets.key %q was overwritten", bad)
		}
	}
}

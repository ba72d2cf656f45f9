package nodecert

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/k8s/pki"
	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/membership"
)

var kitchen = Member{Name: "pi-kitchen", IPs: []netip.Addr{netip.MustParseAddr("10.77.0.5"), netip.MustParseAddr("fd42::5")}}

func newIssuer(t testing.TB) *Issuer {
	t.Helper()
	p, err := pki.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &Issuer{
		PKI:        func() *pki.PKI { return p },
		APIServers: func() []string { return []string{"https://10.77.0.1:6443"} },
	}
}

// The node's round trip: keys made once, certificates for them, files
// written, renewal due at two thirds of their life.
func TestRoundTrip(t *testing.T) {
	is := newIssuer(t)
	d := Dir(t.TempDir())
	if !d.RenewAt().IsZero() {
		t.Fatal("a node without certificates is not due now")
	}
	req, err := d.Request()
	if err != nil {
		t.Fatal(err)
	}
	again, err := d.Request()
	if err != nil || !bytes.Equal(req.ClientKey, again.ClientKey) || !bytes.Equal(req.ServingKey, again.ServingKey) {
		t.Fatalf("keys not kept across requests: %v", err)
	}
	for _, f := range []string{ClientKeyFile, ServingKeyFile, ProxyKeyFile, DNSKeyFile} {
		fi, err := os.Stat(d.Path(f))
		if err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode())
		}
	}
	certs, err := is.Issue(kitchen, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Store(certs); err != nil {
		t.Fatal(err)
	}
	client := readCert(t, d.Path(ClientCertFile))
	if client.Subject.CommonName != "system:node:pi-kitchen" || !slices.Equal(client.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("client certificate subject %v", client.Subject)
	}
	serving := readCert(t, d.Path(ServingCertFile))
	if len(serving.IPAddresses) != 2 || !slices.Contains(serving.DNSNames, "pi-kitchen") {
		t.Errorf("serving certificate for %v %v, want the node's two addresses and name", serving.IPAddresses, serving.DNSNames)
	}
	due := d.RenewAt()
	issued := client.NotBefore.Add(pki.Backdate)
	if want := issued.Add(client.NotAfter.Sub(issued) * 2 / 3); due.Sub(want).Abs() > time.Second {
		t.Errorf("renewal at %v, want %v", due, want)
	}
	for _, f := range []string{KubeconfigFile, ProxyConfFile, DNSConfFile} {
		if _, err := os.Stat(d.Path(f)); err != nil {
			t.Error(err)
		}
	}
	if p := readCert(t, d.Path(ProxyCertFile)); p.Subject.CommonName != "system:kube-proxy" {
		t.Errorf("kube-proxy certificate subject %v", p.Subject)
	}
	if c := readCert(t, d.Path(DNSCertFile)); !slices.Equal(c.Subject.Organization, []string{"hepto:dns"}) {
		t.Errorf("DNS certificate subject %v", c.Subject)
	}
}

// Certificates for other keys, or from another CA, are refused and
// nothing is written.
func TestStoreRefusesForeignCertificates(t *testing.T) {
	is := newIssuer(t)
	d, other := Dir(t.TempDir()), Dir(t.TempDir())
	req, err := d.Request()
	if err != nil {
		t.Fatal(err)
	}
	otherReq, err := other.Request()
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := is.Issue(kitchen, otherReq)
	if err != nil {
		t.Fatal(err)
	}
	// Each refusal for its own reason.
	if err := d.Store(foreign); err == nil || !strings.Contains(err.Error(), "private key does not match public key") {
		t.Errorf("certificates for another node's keys: %v, want a key mismatch", err)
	}
	mine, err := is.Issue(kitchen, req)
	if err != nil {
		t.Fatal(err)
	}
	good := mine
	mine.CA = newIssuer(t).PKI().Cluster.CertPEM
	if err := d.Store(mine); !errors.As(err, new(x509.UnknownAuthorityError)) {
		t.Errorf("certificates of another CA: %v, want an unknown authority", err)
	}
	mine.CA, mine.APIServers = is.PKI().Cluster.CertPEM, nil
	if err := d.Store(mine); err == nil || !strings.Contains(err.Error(), "no apiserver") {
		t.Errorf("certificates without an apiserver: %v, want a refusal naming the apiserver", err)
	}
	if _, err := os.Stat(d.Path(ClientCertFile)); !os.IsNotExist(err) {
		t.Errorf("a refused answer left %s: %v", ClientCertFile, err)
	}
	// The same answer, untouched, is stored: the refusals above were for
	// what each changed.
	if err := d.Store(good); err != nil {
		t.Errorf("the node's own certificates: %v", err)
	}
}

// The issuer answers a member's hepto only (a call signed with the
// member's key, from its address), and refuses bad keys with bad_request.
func TestIssuerRoutes(t *testing.T) {
	is := newIssuer(t)
	cpKey, kitchenKey, otherKey, shedKey := newKey(t), newKey(t), newKey(t), newKey(t)
	// The shed's node was admitted to the fabric only.
	shed := membership.Node{Name: "shed", OverlayIPs: []netip.Addr{netip.MustParseAddr("10.77.0.6")}, PublicKey: shedKey.Public(), Roles: []string{membership.RoleFabric}}
	server := &control.Identity{Key: cpKey, Member: func(a netip.Addr) (membership.Node, bool) {
		if slices.Contains(shed.OverlayIPs, a) {
			return shed, true
		}
		return membership.Node{Name: kitchen.Name, OverlayIPs: kitchen.IPs, PublicKey: kitchenKey.Public()}, slices.Contains(kitchen.IPs, a)
	}}
	mux := http.NewServeMux()
	is.Routes(mux)
	h := server.Handler(mux)
	req, err := Dir(t.TempDir()).Request()
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, from string
		signer     key.Private // zero: unsigned
		body       []byte
		tamper     bool // the body changed after signing (a space added)
		status     int
	}{
		{"member's hepto", "10.77.0.5:40000", kitchenKey, body, false, http.StatusOK},
		{"over IPv6", "[fd42::5]:40000", kitchenKey, body, false, http.StatusOK},
		{"another process on the member", "10.77.0.5:40000", key.Private{}, body, false, http.StatusForbidden},
		{"another key from the member's address", "10.77.0.5:40000", otherKey, body, false, http.StatusForbidden},
		{"stranger", "10.77.0.9:40000", otherKey, body, false, http.StatusForbidden},
		{"member of the fabric only", "10.77.0.6:40000", shedKey, body, false, http.StatusForbidden},
		{"body changed", "10.77.0.5:40000", kitchenKey, body, true, http.StatusBadRequest},
		{"bad key", "10.77.0.5:40000", kitchenKey, []byte(`{"client_key":"AAAA","serving_key":"AAAA","proxy_key":"AAAA","dns_key":"AAAA"}`), false, http.StatusBadRequest},
		{"junk", "10.77.0.5:40000", kitchenKey, []byte(`{"client_key":`), false, http.StatusBadRequest},
	} {
		r := httptest.NewRequest("POST", control.PathNodeCerts, bytes.NewReader(c.body))
		r.RemoteAddr = c.from
		if !c.signer.IsZero() {
			id := &control.Identity{Key: c.signer}
			if err := id.Sign(r, cpKey.Public(), c.body); err != nil {
				t.Fatal(err)
			}
		}
		if c.tamper {
			changed := append(slices.Clone(c.body), ' ') // the same request, another body
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(changed)), int64(len(changed))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.status {
			t.Errorf("%s: status %d (%s), want %d", c.name, w.Code, w.Body, c.status)
		}
	}
}

func newKey(t *testing.T) key.Private {
	t.Helper()
	k, err := key.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// FuzzIssue: any request is signed only for valid public keys, and never
// makes the issuer panic.
func FuzzIssue(f *testing.F) {
	is := newIssuer(f)
	req, err := Dir(f.TempDir()).Request()
	if err != nil {
		f.Fatal(err)
	}
	good, err := json.Marshal(req)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"client_key":"","serving_key":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r control.NodeCertsRequest
		if control.Decode(bytes.NewReader(b), &r) != nil {
			return
		}
		certs, err := is.Issue(kitchen, r)
		valid := true
		for _, k := range keysOf(&r) {
			if _, err := x509.ParsePKIXPublicKey(*k); err != nil {
				valid = false
			}
		}
		if (err == nil) != valid {
			t.Fatalf("issue: %v, with keys valid: %v", err, valid)
		}
		if err == nil && len(certs.Client) == 0 {
			t.Fatal("no certificate and no error")
		}
	})
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

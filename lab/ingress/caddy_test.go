package ingress

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestCaddyManifests: three valid documents, the Service first; the
// Caddyfile has the sites, the ACME server, and the PROXY protocol on
// both ports with TLS on 443 only.
func TestCaddyManifests(t *testing.T) {
	m := CaddyManifests(CaddyOptions{
		ACME:  &ACME{DirURL: "https://203.0.113.9:14000/dir", APICA: []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")},
		Sites: []Site{{Host: "a.example.test", Upstream: "a.default.svc:8080"}, {Host: "b.example.test", Upstream: "b.default.svc:80"}},
		Email: "webmaster@example.test", Overlay: "10.77.0.0/16", Node: "home-b", RenewInterval: "10s",
	})
	docs := strings.Split(m, "\n---\n")
	var kinds []string
	var caddyfile string
	for _, d := range docs {
		var obj struct {
			Kind string            `json:"kind"`
			Data map[string]string `json:"data"`
		}
		if err := yaml.Unmarshal([]byte(d), &obj); err != nil {
			t.Fatalf("%v in:\n%s", err, d)
		}
		kinds = append(kinds, obj.Kind)
		if obj.Kind == "ConfigMap" {
			caddyfile = obj.Data["Caddyfile"]
			if !strings.Contains(obj.Data["acme-ca.pem"], "BEGIN CERTIFICATE") {
				t.Error("the ACME server's CA is not in the ConfigMap")
			}
		}
	}
	if strings.Join(kinds, ",") != "Service,ConfigMap,Deployment" {
		t.Errorf("kinds %v", kinds)
	}
	for _, want := range []string{
		"acme_ca https://203.0.113.9:14000/dir", "renew_interval 10s", "allow 10.77.0.0/16",
		"servers :443 {\n\t\tlistener_wrappers {\n\t\t\tproxy_protocol", "\t\t\ttls\n",
		"a.example.test {\n\treverse_proxy a.default.svc:8080\n}", "b.example.test {\n\treverse_proxy b.default.svc:80\n}",
		"redir https://{host}{uri} 308",
	} {
		if !strings.Contains(caddyfile, want) {
			t.Errorf("the Caddyfile lacks %q:\n%s", want, caddyfile)
		}
	}
	if i, j := strings.Index(caddyfile, "servers :80 {"), strings.Index(caddyfile, "http:// {"); i < 0 || strings.Contains(caddyfile[i:j], "tls") {
		t.Errorf("port 80's server: the PROXY protocol without TLS, want it in:\n%s", caddyfile)
	}
}

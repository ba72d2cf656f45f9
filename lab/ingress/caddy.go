package ingress

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hepto-net/hepto/k8s/images"
)

// CaddyImage is the recipe's ingress image: Caddy, built from its Go
// source (make ingress-tools), alone in the image.
const CaddyImage = "hepto.lab/caddy:2.11.9"

// CaddyArchive packs the caddy program into an image archive in dir.
func CaddyArchive(prog, dir string) (string, error) {
	path := filepath.Join(dir, "caddy.tar")
	if err := images.ProgramArchive(path, CaddyImage, prog, "version"); err != nil {
		return "", fmt.Errorf("caddy: %w (make ingress-tools builds it)", err)
	}
	return path, nil
}

// Site is one host name the ingress serves, and the Service behind it.
type Site struct {
	Host     string // a.example.test
	Upstream string // SERVICE.NAMESPACE.svc:PORT
}

// CaddyOptions configure the recipe's manifests.
type CaddyOptions struct {
	ACME  *ACME
	Sites []Site
	Email string
	// Overlay is the cluster's overlay range: the PROXY protocol header is
	// taken from the anchors' connections only.
	Overlay string
	// Node pins the ingress pod (""; the scheduler chooses).
	Node string
	// RenewInterval is how often Caddy looks at its certificates ("":
	// Caddy's default, 10m).
	RenewInterval string
}

// CaddyManifests are the recipe: a ConfigMap with the Caddyfile and the
// ACME server's CA, a Deployment of Caddy, and a LoadBalancer Service on
// ports 80 and 443 with the PROXY protocol, so that the sites' logs and
// upstreams (X-Forwarded-For) see the visitors' addresses.
func CaddyManifests(o CaddyOptions) string {
	var b strings.Builder
	b.WriteString("{\n")
	fmt.Fprintf(&b, "\tacme_ca %s\n\tacme_ca_root /etc/caddy/acme-ca.pem\n\temail %s\n", o.ACME.DirURL, o.Email)
	b.WriteString("\tocsp_stapling off\n\tstorage file_system /data\n\tadmin off\n")
	if o.RenewInterval != "" {
		fmt.Fprintf(&b, "\trenew_interval %s\n", o.RenewInterval)
	}
	// The PROXY protocol header first, then TLS on :443.
	pp := fmt.Sprintf("\t\t\tproxy_protocol {\n\t\t\t\ttimeout 5s\n\t\t\t\tallow %s\n\t\t\t}\n", o.Overlay)
	fmt.Fprintf(&b, "\tservers :443 {\n\t\tlistener_wrappers {\n%s\t\t\ttls\n\t\t}\n\t}\n", pp)
	fmt.Fprintf(&b, "\tservers :80 {\n\t\tlistener_wrappers {\n%s\t\t}\n\t}\n}\n", pp)
	// Caddy's own redirect server would not have the :80 wrapper: the
	// same redirect, written out.
	b.WriteString("http:// {\n\tredir https://{host}{uri} 308\n}\n")
	for _, s := range o.Sites {
		fmt.Fprintf(&b, "%s {\n\treverse_proxy %s\n}\n", s.Host, s.Upstream)
	}
	node := ""
	if o.Node != "" {
		node = "      nodeName: " + o.Node + "\n"
	}
	// The Service first: published by the time Caddy asks for its
	// certificates, which the ACME server checks through the anchors.
	return CaddyService + `---
apiVersion: v1
kind: ConfigMap
metadata: {name: caddy}
data:
  Caddyfile: |
` + indent(b.String(), "    ") + `  acme-ca.pem: |
` + indent(string(o.ACME.APICA), "    ") + `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: caddy}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector: {matchLabels: {app: caddy}}
  template:
    metadata: {labels: {app: caddy}}
    spec:
` + node + `      containers:
      - name: caddy
        image: ` + CaddyImage + `
        imagePullPolicy: Never
        args: [run, --config, /etc/caddy/Caddyfile, --adapter, caddyfile]
        env:
        - {name: HOME, value: /data}
        - {name: XDG_DATA_HOME, value: /data}
        - {name: XDG_CONFIG_HOME, value: /data}
        ports: [{containerPort: 80}, {containerPort: 443}]
        volumeMounts:
        - {name: config, mountPath: /etc/caddy}
        - {name: data, mountPath: /data}
      volumes:
      - {name: config, configMap: {name: caddy}}
      - {name: data, emptyDir: {}}
`
}

// CaddyService is the recipe's Service alone (the first document of
// CaddyManifests): applied first and waited for, Caddy's first request
// for certificates finds the anchors serving it (else Caddy retries a
// minute later).
const CaddyService = `apiVersion: v1
kind: Service
metadata:
  name: caddy
  annotations: {hepto.net/proxy-protocol: v2}
spec:
  type: LoadBalancer
  selector: {app: caddy}
  ports:
  - {name: http, port: 80}
  - {name: https, port: 443}
`

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

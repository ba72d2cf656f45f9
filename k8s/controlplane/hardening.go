package controlplane

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hepto-net/hepto/state"
)

// The apiserver's guards for a cluster shared by several households
// (docs/architecture.md, "Sharing a cluster"): anonymous requests only
// for health checks, an audit log, Secrets encrypted in etcd, and Pod
// Security admission at baseline by default.

// AuditDir is where the apiserver's audit log goes, under DATA.
const AuditDir = "audit"

// Audit log rotation: 10 files of 20 MB at most, compressed, a month.
const (
	auditMaxSizeMB  = 20
	auditMaxBackups = 10
	auditMaxAgeDays = 30
)

const authenticationConfig = `apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
anonymous:
  enabled: true
  conditions:
  - path: /livez
  - path: /readyz
  - path: /healthz
`

// auditPolicy: who did what, without bodies; the control plane's own
// reads, leases and events (most of the traffic, none of it a person's
// act) are not written.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version", "/metrics"]
- level: None
  resources: [{group: coordination.k8s.io, resources: [leases]}]
- level: None
  resources: [{group: "", resources: [events]}, {group: events.k8s.io, resources: [events]}]
- level: None
  verbs: [get, list, watch]
  userGroups: [system:nodes]
- level: None
  verbs: [get, list, watch]
  users: [system:kube-controller-manager, system:kube-scheduler, system:kube-proxy, system:apiserver]
- level: Metadata
`

// admissionConfig: Pod Security admission enforces baseline wherever a
// namespace says nothing (no host namespaces, no privileged containers,
// no hostPath, no host ports), warns and audits against restricted.
// kube-system is exempt: hepto runs no pod there, and what an
// administrator puts there is the cluster's own plumbing.
const admissionConfig = `apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults:
      enforce: baseline
      enforce-version: latest
      audit: restricted
      audit-version: latest
      warn: restricted
      warn-version: latest
    exemptions:
      namespaces: [kube-system]
`

// encryptionConfig encrypts Secrets with secretbox under the cluster's
// first key, and decrypts them under any; identity last, to read what was
// written before encryption. A key's name is a hash of it: what etcd's
// values are prefixed with (k8s:enc:secretbox:v1:NAME:).
func encryptionConfig(keys [][]byte) string {
	var b strings.Builder
	b.WriteString(`apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - secretbox:
      keys:
`)
	for _, k := range keys {
		fmt.Fprintf(&b, "      - name: %s\n        secret: %s\n", SecretsKeyName(k), base64.StdEncoding.EncodeToString(k))
	}
	b.WriteString("  - identity: {}\n")
	return b.String()
}

// SecretsKeyName is the name of a Secrets key in the encryption
// configuration and in etcd's values.
func SecretsKeyName(key []byte) string {
	sum := sha256.Sum256(key)
	return "k" + hex.EncodeToString(sum[:4])
}

// encryptionFile is the apiserver's encryption configuration under
// dataDir.
func encryptionFile(dataDir string) string {
	return filepath.Join(dataDir, "config", "encryption.yaml")
}

// hardeningArgs writes the apiserver's configuration files under
// dataDir/config and returns the flags that name them.
func hardeningArgs(dataDir string, secretsKeys [][]byte) ([]string, error) {
	dir := filepath.Join(dataDir, "config")
	audit := filepath.Join(dataDir, AuditDir)
	for _, d := range []string{dir, audit} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("control plane: %w", err)
		}
	}
	files := []struct{ name, content string }{
		{"authentication.yaml", authenticationConfig},
		{"audit-policy.yaml", auditPolicy},
		{"admission.yaml", admissionConfig},
		{filepath.Base(encryptionFile(dataDir)), encryptionConfig(secretsKeys)},
	}
	for _, f := range files {
		if err := state.Dir(dir).WriteBytes(f.name, []byte(f.content), 0o600); err != nil {
			return nil, fmt.Errorf("control plane: %w", err)
		}
	}
	path := func(name string) string { return filepath.Join(dir, name) }
	return []string{
		"--authentication-config=" + path("authentication.yaml"),
		"--admission-control-config-file=" + path("admission.yaml"),
		"--encryption-provider-config=" + encryptionFile(dataDir),
		// A rotation of the keys (SetSecretsKeys) rewrites the file: the
		// apiserver reads it again without a restart.
		"--encryption-provider-config-automatic-reload",
		"--audit-policy-file=" + path("audit-policy.yaml"),
		"--audit-log-path=" + filepath.Join(audit, "audit.log"),
		"--audit-log-format=json",
		"--audit-log-maxsize=" + fmt.Sprint(auditMaxSizeMB),
		"--audit-log-maxbackup=" + fmt.Sprint(auditMaxBackups),
		"--audit-log-maxage=" + fmt.Sprint(auditMaxAgeDays),
		"--audit-log-compress",
		"--enable-admission-plugins=" + strings.Join(admissionPlugins, ","),
	}, nil
}

// admissionPlugins hepto turns on beside upstream's defaults (PodSecurity
// is one of them): kubelets change only their own Node and pods, and no
// Service claims an external IP (a tenant could take over another's
// traffic with one; published Services get the anchors' addresses).
var admissionPlugins = []string{"NodeRestriction", "DenyServiceExternalIPs"}

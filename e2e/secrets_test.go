package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkSecretsRotated: `hepto secrets rotate` on one control-plane node
// gives every one a single new key, and every apiserver still reads a
// Secret written before, which it can only do if the Secret was written
// again under the new key (the old one is gone).
func checkSecretsRotated(t *testing.T, nodes []*node) {
	t.Helper()
	cp := nodes[0]
	kubectl(t, cp, "create", "secret", "generic", "rotated", "--from-literal=word=swordfish")
	before := map[string][]string{}
	for _, n := range nodes {
		before[n.Name] = secretsKeyNames(t, n)
	}
	began := time.Now()
	out, err := cp.Hepto("secrets", "rotate")
	if err != nil {
		t.Fatalf("hepto secrets rotate: %v", err)
	}
	t.Logf("hepto secrets rotate, in %s: %s", time.Since(began).Round(time.Second), strings.TrimSpace(out))
	for _, n := range nodes {
		keys := secretsKeyNames(t, n)
		if len(keys) != 1 || keys[0] == before[n.Name][0] || !strings.Contains(out, "key "+keys[0]+":") {
			t.Errorf("%s: Secrets keys %v after the rotation (before: %v), want one new key, the one the command names", n.Name, keys, before[n.Name])
		}
		got := strings.TrimSpace(kubectl(t, n, "get", "secret", "rotated", "-o", "jsonpath={.data.word}"))
		if got != base64.StdEncoding.EncodeToString([]byte("swordfish")) {
			t.Errorf("%s's apiserver reads the Secret as %q after the rotation", n.Name, got)
		}
		if !strings.Contains(out, n.Name) {
			t.Errorf("the rotation does not name control-plane node %s: %q", n.Name, out)
		}
	}
}

// secretsKeyNames are the names (as etcd's values carry them) of a
// control-plane node's Secrets keys, in order.
func secretsKeyNames(t *testing.T, n *node) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.State, "kubernetes", "pki", "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Fields(string(b)) {
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			t.Fatalf("%s: secrets.key: %v", n.Name, err)
		}
		sum := sha256.Sum256(k)
		out = append(out, "k"+hex.EncodeToString(sum[:4]))
	}
	return out
}

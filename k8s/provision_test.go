package k8s

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hepto-net/hepto/control"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestCheckClaim(t *testing.T) {
	claim := func(modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{AccessModes: modes}}
	}
	if r := checkClaim(claim(corev1.ReadWriteOnce, corev1.ReadWriteOncePod), true); r != "" {
		t.Errorf("RWO, RWOP refused: %s", r)
	}
	block := claim(corev1.ReadWriteOnce)
	block.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock)
	clone := claim(corev1.ReadWriteOnce)
	clone.Spec.DataSource = &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "other"}
	for _, c := range []struct {
		pvc   *corev1.PersistentVolumeClaim
		sized bool
		want  string
	}{
		{claim(corev1.ReadWriteOnce), false, "no storage size"},
		{block, true, "Block"},
		{clone, true, "data source"},
		{claim(corev1.ReadWriteMany), true, "ReadWriteMany"},
		{claim(corev1.ReadOnlyMany), true, "ReadOnlyMany"},
	} {
		if r := checkClaim(c.pvc, c.sized); !strings.Contains(r, c.want) {
			t.Errorf("refusal %q, want one naming %q", r, c.want)
		}
	}
}

func TestParseVolumeSpace(t *testing.T) {
	for in, want := range map[string][3]int64{
		"1024/4096": {1024, 4096, 1},
		"0/0":       {0, 0, 1},
		"":          {},
		"1024":      {},
		"5000/4096": {}, // more free than the disk
		"-1/4096":   {},
		"a/b":       {},
		"1/2/3":     {},
	} {
		a, c, ok := parseVolumeSpace(in)
		if ok != (want[2] == 1) || (ok && (a != want[0] || c != want[1])) {
			t.Errorf("parseVolumeSpace(%q) = %d %d %v, want %v", in, a, c, ok, want)
		}
	}
}

func FuzzParseVolumeSpace(f *testing.F) {
	f.Add("1024/4096")
	f.Add("9223372036854775807/9223372036854775807")
	f.Fuzz(func(t *testing.T, s string) {
		a, c, ok := parseVolumeSpace(s)
		if ok && (a < 0 || c < a) {
			t.Fatalf("%q: available %d of %d accepted", s, a, c)
		}
	})
}

func TestVolumeNodeAndCapacityName(t *testing.T) {
	pv := &corev1.PersistentVolume{Spec: corev1.PersistentVolumeSpec{NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{"home-b"}}}}},
	}}}}
	if n := volumeNode(pv); n != "home-b" {
		t.Errorf("volume's node %q, want home-b", n)
	}
	if n := volumeNode(&corev1.PersistentVolume{}); n != "" {
		t.Errorf("a volume without affinity on node %q", n)
	}
	long := strings.Repeat("n", 63)
	if a, b := capacityName(long, strings.Repeat("c", 253)), capacityName(long, "local"); a == b || len(a) > 63 {
		t.Errorf("capacity names %q, %q: want distinct and short", a, b)
	}
}

// Only a control-plane node's hepto makes volumes: an unsigned call (a
// pod, a host on the LAN) makes none.
func TestVolumeRequestUnsigned(t *testing.T) {
	n := &Node{layout: Layout{Volumes: t.TempDir()}, log: slog.New(slog.DiscardHandler)}
	w := httptest.NewRecorder()
	n.handleVolume(w, httptest.NewRequest(http.MethodPost, control.PathVolumes, strings.NewReader(`{"op":"create","name":"pvc-x"}`)))
	if w.Code == http.StatusOK {
		t.Errorf("unsigned create: %d %s, want a refusal", w.Code, w.Body)
	}
	if _, err := os.Stat(filepath.Join(n.layout.Volumes, "pvc-x")); !os.IsNotExist(err) {
		t.Errorf("unsigned create made the volume: %v", err)
	}
}

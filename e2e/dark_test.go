package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

const darkManifest = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: web}}
            topologyKey: kubernetes.io/hostname
      # The anchor may take a replica of a dark home (a lab of two homes
      # has nowhere else).
      tolerations:
      - {key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}
      - {key: hepto.net/anchor, operator: Exists, effect: NoSchedule}
      containers:
      - name: web
        image: %[1]s
        imagePullPolicy: Never
        command: [/web, serve]
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /ready, port: 8080}
          periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
`

// TestHomeGoesDark: a Deployment with a replica in each of two homes; one
// home's uplink is cut. Its endpoint leaves the Service within a minute,
// the Service keeps answering, the lost replica runs elsewhere within
// three (the defaults chosen for homes); the uplink back, the home's node
// is Ready again with no one acting.
func TestHomeGoesDark(t *testing.T) {
	k := startKube(t, kubeOptions{})
	an := k.an
	clusterIP := deployInHomes(t, an)
	onHome := func(node string) bool { return node == "home-a" || node == "home-b" }
	pods := webPods(t, an)
	if len(pods) != 2 || !onHome(pods[0].Spec.NodeName) || !onHome(pods[1].Spec.NodeName) {
		t.Fatalf("replicas on %v, want one in each home", podNodes(pods))
	}
	var darkPod string
	for _, p := range pods {
		if p.Spec.NodeName == "home-b" {
			darkPod = p.Name
		}
	}
	if darkPod == "" {
		t.Fatalf("no replica on home-b: %v", podNodes(pods))
	}

	if err := k.homeB.SetDelay(0, 100); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	restored := false
	defer func() {
		if !restored {
			k.homeB.SetDelay(0, 0)
		}
	}()
	eventually(t, 90*time.Second, func() error {
		if n := readyEndpoints(t, an); n != 1 {
			return fmt.Errorf("%d ready endpoints", n)
		}
		return nil
	})
	left := time.Since(cut)
	t.Logf("home-b cut off: its endpoint left the Service after %s", left.Round(time.Second))
	if left > time.Minute {
		t.Errorf("endpoint left after %s, want ≤ 60 s", left.Round(time.Second))
	}
	// kube-proxy follows the endpoints within a second or two.
	time.Sleep(3 * time.Second)
	failed := serviceFailures(an, clusterIP)
	t.Logf("the Service answered %d of 10 connections with home-b dark", 10-failed)
	if failed > 0 {
		t.Errorf("%d of 10 connections to the Service failed with home-b dark", failed)
	}
	waitReplicasOutside(t, an, "home-b")
	moved := time.Since(cut)
	t.Logf("home-b cut off: its replica ran elsewhere after %s", moved.Round(time.Second))
	if moved > 3*time.Minute {
		t.Errorf("replica rescheduled after %s, want ≤ 3 min", moved.Round(time.Second))
	}

	if err := k.homeB.SetDelay(0, 0); err != nil {
		t.Fatal(err)
	}
	restored = true
	back := time.Now()
	eventually(t, 2*time.Minute, func() error { return allReady(an, "home-b") })
	t.Logf("home-b's uplink back: Ready after %s", time.Since(back).Round(time.Second))
}

// deployInHomes runs the web Deployment with a replica in each home (the
// anchor cordoned meanwhile; a replica that moves may go to it) and
// returns its Service's cluster IP.
func deployInHomes(t *testing.T, an *node) string {
	t.Helper()
	manifest := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(manifest, fmt.Appendf(nil, darkManifest, webImage), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, an, "cordon", "anchor")
	kubectl(t, an, "apply", "-f", manifest)
	kubectl(t, an, "rollout", "status", "deployment/web", "--timeout=120s")
	kubectl(t, an, "uncordon", "anchor")
	return strings.TrimSpace(kubectl(t, an, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"))
}

// waitReplicasOutside waits until two replicas of web are Ready outside
// home.
func waitReplicasOutside(t *testing.T, an *node, home string) {
	t.Helper()
	eventually(t, 4*time.Minute, func() error {
		n := 0
		for _, p := range webPods(t, an) {
			if p.Spec.NodeName != home && p.DeletionTimestamp == nil && podReady(p) {
				n++
			}
		}
		if n < 2 {
			return fmt.Errorf("%d replicas ready outside %s", n, home)
		}
		return nil
	})
}

// serviceFailures counts the failed connections of 10 to the web
// Service's cluster IP from n.
func serviceFailures(n *node, clusterIP string) int {
	failed := 0
	for range 10 {
		if _, err := n.Host.Run(n.w.ctx, "timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/"+clusterIP+"/80"); err != nil {
			failed++
		}
	}
	return failed
}

func webPods(t *testing.T, an *node) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	if err := json.Unmarshal([]byte(kubectl(t, an, "get", "pods", "-l", "app=web", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func podNodes(ps []corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name+"@"+p.Spec.NodeName)
	}
	return out
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func readyEndpoints(t *testing.T, an *node) int {
	t.Helper()
	var list discoveryv1.EndpointSliceList
	out, err := kubectlErr(an, "get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "json")
	if err != nil || json.Unmarshal([]byte(out), &list) != nil {
		return -1
	}
	n := 0
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				n++
			}
		}
	}
	return n
}

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHomes: homes as failure domains. Three homes, one with two
// machines on its LAN, and the anchor: each home is a zone, found without
// a setting; replicas are spread over the homes; a PreferSameZone Service
// answers from the caller's home; claims of the default storage class
// get local volumes that outlive their pods and hepto's restart, and a
// claim no disk can hold waits, saying why.
func TestHomes(t *testing.T) {
	k := startKube(t, kubeOptions{threeHomes: true})
	an := k.an

	// Zones: the two machines of home-a share one, named after its first.
	wantZones := map[string]string{"anchor": "anchor", "home-a": "home-a", "home-a2": "home-a", "home-b": "home-b", "home-c": "home-c"}
	zones := func() map[string]string {
		out := kubectl(t, an, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.topology\.kubernetes\.io/zone}{"\n"}{end}`)
		got := map[string]string{}
		for _, l := range strings.Fields(out) {
			name, zone, _ := strings.Cut(l, "=")
			got[name] = zone
		}
		return got
	}
	eventually(t, 30*time.Second, func() error {
		if got := zones(); fmt.Sprint(got) != fmt.Sprint(wantZones) {
			return fmt.Errorf("zones %v, want %v", got, wantZones)
		}
		return nil
	})
	st, _, err := k.a2.status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Zone != "home-a" {
		t.Errorf("home-a2's status: zone %q, want home-a", st.Zone)
	}
	for _, p := range st.Peers {
		if p.Zone != wantZones[p.Name] {
			t.Errorf("home-a2's status: peer %s in zone %q, want %q", p.Name, p.Zone, wantZones[p.Name])
		}
	}
	// A renumbered home (its box's public address changed) and a restarted
	// node keep their zone.
	if _, err := k.homeB.Renumber(); err != nil {
		t.Fatal(err)
	}
	k.c.stop(syscall.SIGTERM)
	k.c.start()
	k.c.waitSocket()
	k.b.waitConnected(90*time.Second, "anchor")
	k.c.waitConnected(90*time.Second, "anchor")
	eventually(t, 2*time.Minute, func() error { return allReady(an, "home-b", "home-c") })
	if got := zones(); fmt.Sprint(got) != fmt.Sprint(wantZones) {
		t.Errorf("after home-b's renumbering and home-c's restart: zones %v, want %v", got, wantZones)
	}

	// Three replicas, three homes: the scheduler's default spreading.
	dir := t.TempDir()
	manifest := filepath.Join(dir, "spread.yaml")
	if err := os.WriteFile(manifest, []byte(spreadManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, an, "apply", "-f", manifest)
	kubectl(t, an, "rollout", "status", "deployment/spread", "--timeout=180s")
	podZone := map[string]string{} // pod → zone
	out := kubectl(t, an, "get", "pods", "-l", "app=spread", "-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.nodeName}{"\n"}{end}`)
	for _, l := range strings.Fields(out) {
		pod, node, _ := strings.Cut(l, "=")
		podZone[pod] = wantZones[node]
	}
	var used []string
	for _, z := range podZone {
		used = append(used, z)
	}
	slices.Sort(used)
	if strings.Join(used, " ") != "home-a home-b home-c" {
		t.Fatalf("three replicas in zones %v (%s), want one in each home", used, out)
	}

	// PreferSameZone: from home-a2, the Service is answered by the replica
	// in home-a, wherever in the home it runs.
	var sameHome string
	for pod, z := range podZone {
		if z == "home-a" {
			sameHome = pod
		}
	}
	kubectl(t, an, "run", "client", "--image", webImage, "--image-pull-policy", "Never",
		"--overrides", `{"spec":{"nodeName":"home-a2"}}`, "--command", "--", "/web", "serve")
	kubectl(t, an, "wait", "--for=condition=Ready", "pod/client", "--timeout=120s")
	ip := strings.TrimSpace(kubectl(t, an, "get", "service", "spread", "-o", "jsonpath={.spec.clusterIP}"))
	eventually(t, 30*time.Second, func() error {
		out, err := kubectlErr(an, "exec", "client", "--", "/web", "get", "http://"+ip+":8080/", "12")
		if err != nil {
			return err
		}
		for _, answer := range strings.Fields(out) {
			if answer != sameHome {
				return fmt.Errorf("answered by %s, want %s (the replica in home-a) every time: %s", answer, sameHome, out)
			}
		}
		return nil
	})

	// Draining a home, as documented: its replica goes to another home
	// (within the Deployment's disruption budget), and the home takes
	// pods again once uncordoned.
	kubectl(t, an, "create", "poddisruptionbudget", "spread", "--selector", "app=spread", "--max-unavailable", "1")
	kubectl(t, an, "drain", "-l", "topology.kubernetes.io/zone=home-c", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=120s")
	kubectl(t, an, "rollout", "status", "deployment/spread", "--timeout=120s")
	out = kubectl(t, an, "get", "pods", "-l", "app=spread", "--field-selector", "status.phase=Running", "-o", `jsonpath={.items[*].spec.nodeName}`)
	if nodes := strings.Fields(out); len(nodes) != 3 || slices.Contains(nodes, "home-c") {
		t.Errorf("replicas on %v after home-c's drain, want three outside home-c", nodes)
	}
	kubectl(t, an, "uncordon", "-l", "topology.kubernetes.io/zone=home-c")

	checkLocalVolumes(t, k)
	checkImageSharing(t, k)
}

// checkImageSharing: an image that no node holds comes from the registry
// (home-b); the next node takes it from a node that holds it, of its own
// home first: home-a2's pull after home-a's crosses home-a's uplink only
// for what the registry alone says (the tag), not the image.
func checkImageSharing(t *testing.T, k *kubeCluster) {
	an := k.an
	const name = "hepto.test/etcd-member:shared"
	r := serveRegistry(t, an.Host, buildProgramImage(t, "../lab/etcdmember", name), k.a, k.a2, k.b)
	pull := func(n *node) {
		t.Helper()
		pod := "pull-" + n.Name
		kubectl(t, an, "run", pod, "--image", name, "--image-pull-policy", "Always", "--restart", "Never",
			"--overrides", fmt.Sprintf(`{"spec":{"nodeName":%q}}`, n.Name), "--command", "--", "/etcdmember", "keys", "http://127.0.0.1:1", "x")
		eventually(t, 2*time.Minute, func() error {
			id := kubectl(t, an, "get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].imageID}")
			if id == "" {
				ev, _ := kubectlErr(an, "get", "events", "--field-selector", "involvedObject.name="+pod, "-o", "jsonpath={.items[*].message}")
				return fmt.Errorf("%s: image not pulled yet: %s", pod, ev)
			}
			return nil
		})
	}
	pull(k.b)
	fromRegistry := r.Served.Load()
	t.Logf("home-b pulled %s from the registry: %d bytes", name, fromRegistry)
	if fromRegistry < 1<<20 {
		t.Fatalf("the registry served %d bytes for the first pull", fromRegistry)
	}
	pull(k.a)
	rx0, tx0, err := k.w.lab.UplinkCounters(k.homeA)
	if err != nil {
		t.Fatal(err)
	}
	served := r.Served.Load()
	pull(k.a2)
	rx1, tx1, err := k.w.lab.UplinkCounters(k.homeA)
	if err != nil {
		t.Fatal(err)
	}
	uplink := (rx1 - rx0) + (tx1 - tx0)
	t.Logf("home-a2's pull after home-a's: %d bytes across home-a's uplink, %d from the registry; the image is %d bytes",
		uplink, r.Served.Load()-served, fromRegistry)
	if uplink > uint64(fromRegistry)/10 {
		t.Errorf("home-a2's pull took %d bytes across home-a's uplink, want at most a tenth of the image's %d", uplink, fromRegistry)
	}
	if total := r.Served.Load(); total > fromRegistry+fromRegistry/10 {
		t.Errorf("the registry served %d bytes for three pulls of a %d-byte image, want it once", total, fromRegistry)
	}
}

const spreadManifest = `apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 3
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      containers:
      - {name: web, image: "hepto.test/web:1", imagePullPolicy: Never, command: [/web, serve]}
---
apiVersion: v1
kind: Service
metadata: {name: spread}
spec:
  selector: {app: spread}
  trafficDistribution: PreferSameZone
  ports: [{port: 8080}]
`

// checkLocalVolumes: a claim of the default class gets a volume on its
// pod's node; the data outlives the pod and hepto's restart; a claim
// larger than any disk waits with a clear event; expanding works; delete
// reclaims the directory.
func checkLocalVolumes(t *testing.T, k *kubeCluster) {
	an := k.an
	dir := t.TempDir()
	manifest := filepath.Join(dir, "volume.yaml")
	if err := os.WriteFile(manifest, []byte(volumeManifest("data", "64Mi", "home-b")), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	kubectl(t, an, "apply", "-f", manifest)
	kubectl(t, an, "wait", "--for=jsonpath={.status.phase}=Bound", "pvc/data", "--timeout=120s")
	t.Logf("claim to Bound in %.1fs (with its pod's scheduling)", time.Since(start).Seconds())
	kubectl(t, an, "wait", "--for=condition=Ready", "pod/data", "--timeout=120s")
	pv := strings.TrimSpace(kubectl(t, an, "get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}"))
	path := filepath.Join(k.b.State, "volumes", pv)
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Fatalf("volume %s: no directory %s on home-b: %v", pv, path, err)
	}
	if aff := kubectl(t, an, "get", "pv", pv, "-o", "jsonpath={.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}"); aff != "home-b" {
		t.Errorf("volume %s bound to node %q, want home-b", pv, aff)
	}
	kubectl(t, an, "exec", "data", "--", "/web", "write", "/data/kept", "written before")
	// The pod goes, and hepto restarts: the data stays.
	kubectl(t, an, "delete", "pod", "data", "--wait=true")
	k.b.stop(syscall.SIGTERM)
	k.b.start()
	k.b.waitSocket()
	eventually(t, 2*time.Minute, func() error { return allReady(an, "home-b") })
	kubectl(t, an, "apply", "-f", manifest)
	kubectl(t, an, "wait", "--for=condition=Ready", "pod/data", "--timeout=180s")
	if got := kubectl(t, an, "exec", "data", "--", "/web", "cat", "/data/kept"); strings.TrimSpace(got) != "written before" {
		t.Errorf("data after the pod's deletion and hepto's restart: %q", got)
	}
	// Expansion: the claim's new size is recorded.
	kubectl(t, an, "patch", "pvc", "data", "-p", `{"spec":{"resources":{"requests":{"storage":"128Mi"}}}}`)
	eventually(t, time.Minute, func() error {
		if got := kubectl(t, an, "get", "pvc", "data", "-o", "jsonpath={.status.capacity.storage}"); got != "128Mi" {
			return fmt.Errorf("claim capacity %q after expansion, want 128Mi", got)
		}
		return nil
	})

	// A claim no disk can hold: its pod is not scheduled, and says why.
	huge := filepath.Join(dir, "huge.yaml")
	if err := os.WriteFile(huge, []byte(volumeManifest("huge", "100Ti", "")), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl(t, an, "apply", "-f", huge)
	eventually(t, time.Minute, func() error {
		ev := kubectl(t, an, "get", "events", "--field-selector", "involvedObject.name=huge,reason=FailedScheduling", "-o", "jsonpath={.items[*].message}")
		if !strings.Contains(ev, "did not have enough free storage") {
			return fmt.Errorf("pod huge: scheduling events %q, want one saying no node has enough free storage", ev)
		}
		return nil
	})
	if phase := kubectl(t, an, "get", "pvc", "huge", "-o", "jsonpath={.status.phase}"); phase != "Pending" {
		t.Errorf("claim huge: %s, want Pending", phase)
	}
	kubectl(t, an, "delete", "-f", huge, "--wait=true")

	// Deleting the claim deletes the volume and its directory.
	kubectl(t, an, "delete", "-f", manifest, "--wait=true")
	eventually(t, time.Minute, func() error {
		if _, err := kubectlErr(an, "get", "pv", pv); err == nil {
			return fmt.Errorf("volume %s still there", pv)
		}
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("directory %s still there", path)
		}
		return nil
	})
}

// volumeManifest is a claim of the default class and a pod using it
// (on node, if given).
func volumeManifest(name, size, node string) string {
	sel := ""
	if node != "" {
		sel = fmt.Sprintf("  nodeSelector: {kubernetes.io/hostname: %s}\n", node)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %[1]s}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: %[2]s}}
---
apiVersion: v1
kind: Pod
metadata: {name: %[1]s}
spec:
%[3]s  containers:
  - {name: web, image: "hepto.test/web:1", imagePullPolicy: Never, command: [/web, serve], volumeMounts: [{name: data, mountPath: /data}]}
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: %[1]s}}
`, name, size, sel)
}

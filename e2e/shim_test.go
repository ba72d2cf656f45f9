package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// checkSharedShim: all the pods of a node share one runc shim; once the
// pod whose directory the shim started in is gone, the shim serves the
// other pods (exec) and starts new ones.
func checkSharedShim(t *testing.T, cp, home *node) {
	t.Helper()
	sock := filepath.Join(home.State, "kubernetes", "containerd", "containerd.sock")
	shims := nodeShims(sock)
	pods := runningPods(t, cp, home.Name)
	if len(shims) != 1 || len(pods) < 2 {
		t.Fatalf("%s: %d shims for %d running pods, want one for several", home.Name, len(shims), len(pods))
	}
	shim := shims[0]
	// The shim's directory is its first container's bundle: the sandbox of
	// the node's first pod.
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", shim))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(filepath.Dir(heptoBin), "ctr"), "--address", sock, "--namespace", "k8s.io",
		"containers", "info", filepath.Base(cwd)).Output()
	if err != nil {
		t.Fatalf("ctr containers info %s: %v", filepath.Base(cwd), err)
	}
	var info struct{ Labels map[string]string }
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("ctr containers info %s: %v: %.300s", filepath.Base(cwd), err, out)
	}
	first, ns := info.Labels["io.kubernetes.pod.name"], info.Labels["io.kubernetes.pod.namespace"]
	if first == "" {
		t.Fatalf("the shim's first container %s names no pod: %v", filepath.Base(cwd), info.Labels)
	}
	kubectl(t, cp, "delete", "pod", "-n", ns, first, "--wait", "--timeout=60s")

	kubectl(t, cp, "run", "after-first", "--image", webImage, "--image-pull-policy", "Never",
		"--overrides", fmt.Sprintf(`{"spec":{"nodeName":%q}}`, home.Name), "--command", "--", "/web", "serve")
	kubectl(t, cp, "wait", "--for=condition=Ready", "pod/after-first", "--timeout=120s")
	others := []string{"default/after-first"}
	for _, p := range pods {
		if p.Name != first || p.Namespace != ns {
			others = append(others, p.Namespace+"/"+p.Name)
		}
	}
	for _, p := range others {
		pns, name, _ := strings.Cut(p, "/")
		want := "hello " + name
		if out, err := kubectlErr(cp, "exec", "-n", pns, name, "--", "/web", "echo", "hello", name); err != nil || strings.TrimSpace(out) != want {
			t.Errorf("exec in %s once %s/%s is gone: %q, %v", p, ns, first, out, err)
		}
	}
	if now := nodeShims(sock); !slices.Equal(now, shims) {
		t.Errorf("%s: shims %v, want the same one as before, %v", home.Name, now, shims)
	}

	// The price of one shim: killed, it takes all the node's containers
	// with it, and the kubelet starts them all again, in a new shim.
	before := runningPods(t, cp, home.Name)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, func() error {
		now := runningPods(t, cp, home.Name)
		if len(now) != len(before) {
			return fmt.Errorf("%d pods running on %s, want %d", len(now), home.Name, len(before))
		}
		for _, p := range now {
			for _, c := range p.Status.ContainerStatuses {
				if !c.Ready || c.RestartCount == 0 {
					return fmt.Errorf("%s/%s: ready %v, restarts %d", p.Name, c.Name, c.Ready, c.RestartCount)
				}
			}
		}
		if s := nodeShims(sock); len(s) != 1 || s[0] == shim {
			return fmt.Errorf("shims %v, want one new shim", s)
		}
		return nil
	})
}

// runningPods are the pods on a node whose containers all run.
func runningPods(t *testing.T, cp *node, nodeName string) []corev1.Pod {
	t.Helper()
	var list corev1.PodList
	out := kubectl(t, cp, "get", "pods", "-A", "--field-selector", "spec.nodeName="+nodeName+",status.phase=Running", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// nodeShims are the pids of the runc shims of the containerd at sock.
func nodeShims(sock string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(comm)) != "containerd-shim" {
			continue
		}
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(string(b), "\x00")
		if i := slices.Index(args, "-address"); i >= 0 && i+1 < len(args) && args[i+1] == sock {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

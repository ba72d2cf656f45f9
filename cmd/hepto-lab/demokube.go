package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hepto-net/hepto/k8s/images"
	"github.com/hepto-net/hepto/lab/cluster"
)

// demoImage is the demo's image: lab/web, packed by hepto-lab.
const demoImage = "hepto.demo/web:1"

// webArchive packs the web program into an image archive in dir.
func webArchive(prog, dir string) (string, error) {
	path := filepath.Join(dir, "web.tar")
	if err := images.ProgramArchive(path, demoImage, prog, "serve"); err != nil {
		return "", fmt.Errorf("the demo image's program: %w (make demo builds it)", err)
	}
	return path, nil
}

// demoDaemonSet runs the web server on every node.
const demoDaemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: hello}
spec:
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      tolerations: [{operator: Exists}]
      containers:
      - name: web
        image: ` + demoImage + `
        imagePullPolicy: Never
`

// demoKubernetes waits for every node to be Ready, runs a pod on each,
// and has one reach another across homes.
func demoKubernetes(cmd *cobra.Command, c *cluster.Cluster, nodes []*cluster.Node) error {
	out := cmd.OutOrStdout()
	cp := nodes[0]
	kubectl := func(args ...string) (string, error) { return cp.Hepto(append([]string{"kubectl"}, args...)...) }
	fmt.Fprintln(out, "\n==> Kubernetes: waiting for every node to be Ready")
	if err := kubeReady(nodes, 3*time.Minute); err != nil {
		return err
	}
	manifest := filepath.Join(c.Dir, "hello.yaml")
	if err := os.WriteFile(manifest, []byte(demoDaemonSet), 0o644); err != nil {
		return err
	}
	fmt.Fprintln(out, "==> a DaemonSet: one web server pod on each node (image from STATE/images, no registry)")
	if _, err := kubectl("apply", "-f", manifest); err != nil {
		return err
	}
	if _, err := kubectl("rollout", "status", "daemonset/hello", "--timeout=120s"); err != nil {
		return err
	}
	for _, args := range [][]string{{"get", "nodes", "-o", "wide"}, {"get", "pods", "-o", "wide"}} {
		res, err := kubectl(args...)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "\n$ hepto kubectl %s    # on the anchor\n%s", strings.Join(args, " "), res)
	}
	// A pod on home-a asks the pod on the symmetric home.
	pods, err := kubectl("get", "pods", "-l", "app=hello", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP}{"\n"}{end}`)
	if err != nil {
		return err
	}
	byNode := map[string][2]string{}
	for _, line := range strings.Split(strings.TrimSpace(pods), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			byNode[f[1]] = [2]string{f[0], f[2]}
		}
	}
	from, to := byNode["home-a"], byNode["home-c"]
	res, err := kubectl("exec", from[0], "--", "/web", "get", "http://"+to[1]+":8080/")
	if err != nil {
		res = "FAILED: " + err.Error() + "\n"
	}
	fmt.Fprintf(out, "\n$ hepto kubectl exec %s -- /web get http://%s:8080/    # home-a's pod asks home-c's\n%s", from[0], to[1], res)
	return nil
}

// kubeReady waits until every node is Ready and the control plane (the
// first node) has made the default service account that pods need.
func kubeReady(nodes []*cluster.Node, timeout time.Duration) error {
	return cluster.Eventually(timeout, func() error {
		for _, n := range nodes {
			st, _, err := n.Status()
			if err != nil {
				return err
			}
			if !st.Kubernetes.Ready {
				return fmt.Errorf("%s: not Ready: %v", n.Name, st.Kubernetes.Components)
			}
		}
		_, err := nodes[0].Hepto("kubectl", "get", "serviceaccount", "default")
		return err
	})
}

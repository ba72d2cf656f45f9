package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hepto-net/hepto/k8s/pki"
	"github.com/hepto-net/hepto/lab"
)

// kubeClient speaks to an apiserver on the control-plane host's loopback
// (dialled inside its namespace) with an admin certificate: the few calls
// the Kubernetes benchmark makes, without client-go.
type kubeClient struct {
	c *http.Client
}

func newKubeClient(h *lab.Host, p *pki.PKI) (*kubeClient, error) {
	admin, err := p.Admin()
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(admin.CertPEM, admin.KeyPEM)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(p.Cluster.Cert)
	tr := &http.Transport{
		DialContext:     h.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}},
	}
	return &kubeClient{c: &http.Client{Transport: tr}}, nil
}

const apiBase = "https://127.0.0.1:6443"

// do sends a request; a status other than 2xx is an error.
func (k *kubeClient) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, apiBase+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := k.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

type kubeCondition struct {
	Type   string `json:"type"`
	Status string `json:"status"`
}

type kubeObject struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Status struct {
		Phase      string          `json:"phase"`
		Conditions []kubeCondition `json:"conditions"`
	} `json:"status"`
}

// nodeReady reports whether the node's Ready condition is True.
func (k *kubeClient) nodeReady(ctx context.Context, name string) error {
	var n kubeObject
	if err := k.do(ctx, "GET", "/api/v1/nodes/"+name, nil, &n); err != nil {
		return err
	}
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" && c.Status == "True" {
			return nil
		}
	}
	return fmt.Errorf("node %s not Ready: %+v", name, n.Status.Conditions)
}

// waitReady polls the node every 100 ms until it is Ready.
func (k *kubeClient) waitReady(ctx context.Context, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var err error
	for {
		if err = k.nodeReady(ctx, name); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %v: %w", timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// podSpec is a pod of image on node (through the scheduler: a node
// selector, not nodeName).
func podSpec(name, image, node string) map[string]any {
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "Pod",
		"metadata":   map[string]any{"name": name, "labels": map[string]string{"app": "bench"}},
		"spec": map[string]any{
			"nodeSelector":                  map[string]string{"kubernetes.io/hostname": node},
			"terminationGracePeriodSeconds": 1,
			"containers": []any{map[string]any{
				"name": "web", "image": image, "imagePullPolicy": "Never",
				"command": []string{"/web", "serve"},
			}},
		},
	}
}

// createPod creates a pod.
func (k *kubeClient) createPod(ctx context.Context, pod map[string]any) error {
	return k.do(ctx, "POST", "/api/v1/namespaces/default/pods", pod, nil)
}

// waitPodsRunning polls until every named pod's phase is Running.
func (k *kubeClient) waitPodsRunning(ctx context.Context, names []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var list struct {
			Items []kubeObject `json:"items"`
		}
		err := k.do(ctx, "GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dbench", nil, &list)
		if err == nil {
			running := map[string]bool{}
			for _, p := range list.Items {
				running[p.Metadata.Name] = p.Status.Phase == "Running"
			}
			var waiting []string
			for _, n := range names {
				if !running[n] {
					waiting = append(waiting, n)
				}
			}
			if len(waiting) == 0 {
				return nil
			}
			err = fmt.Errorf("pods not Running: %v", waiting)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// timePod creates a pod and returns the time from the create request to
// the first watch event that shows it Running.
func (k *kubeClient) timePod(ctx context.Context, pod map[string]any, timeout time.Duration) (time.Duration, error) {
	name := pod["metadata"].(map[string]any)["name"].(string)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	q := url.Values{"watch": {"true"}, "fieldSelector": {"metadata.name=" + name}}
	req, err := http.NewRequestWithContext(ctx, "GET", apiBase+"/api/v1/namespaces/default/pods?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	// The watch is open once its headers are in: no event is missed.
	resp, err := k.c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("watch %s: %s: %s", name, resp.Status, b)
	}
	start := time.Now()
	if err := k.createPod(ctx, pod); err != nil {
		return 0, err
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var ev struct {
			Type   string     `json:"type"`
			Object kubeObject `json:"object"`
		}
		if err := dec.Decode(&ev); err != nil {
			return 0, fmt.Errorf("pod %s: watch: %w", name, err)
		}
		if ev.Object.Status.Phase == "Running" {
			return time.Since(start), nil
		}
		if ev.Object.Status.Phase == "Failed" {
			return 0, fmt.Errorf("pod %s failed", name)
		}
	}
}

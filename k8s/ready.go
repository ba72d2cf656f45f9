package k8s

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hepto-net/hepto/k8s/nodecert"
)

// readyMaxAge bounds how old the Ready condition shown may be; readers in
// between share one request.
const readyMaxAge = 2 * time.Second

// readyCache reads the node's Ready condition from the apiserver, with
// the kubelet's own credentials.
type readyCache struct {
	node   *Node
	mu     sync.Mutex
	client kubernetes.Interface
	at     time.Time
	ready  bool
}

func (r *readyCache) get(ctx context.Context) bool {
	if r.node.runtime == nil { // no kubelet runs here
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.at) < readyMaxAge {
		return r.ready
	}
	r.ready, r.at = r.fetch(ctx), time.Now()
	return r.ready
}

func (r *readyCache) fetch(ctx context.Context) bool {
	if r.client == nil {
		cfg, err := clientcmd.BuildConfigFromFlags("", nodecert.Dir(r.node.layout.Certs).Path(nodecert.KubeconfigFile))
		if err != nil {
			return false
		}
		cfg.Timeout = readyMaxAge
		if r.client, err = kubernetes.NewForConfig(cfg); err != nil {
			return false
		}
	}
	ctx, cancel := context.WithTimeout(ctx, readyMaxAge)
	defer cancel()
	node, err := r.client.CoreV1().Nodes().Get(ctx, r.node.o.NodeName, metav1.GetOptions{})
	if err != nil {
		return false
	}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

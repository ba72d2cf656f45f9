package k8s

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/hepto-net/hepto/k8s/controlplane"
	"github.com/hepto-net/hepto/k8s/pki"
	"github.com/hepto-net/hepto/localapi"
)

// People's kubeconfigs. Each is a client certificate for the person's
// name (CN, what the audit log shows) in a group of its own
// (hepto:kubeconfig:ID), and RBAC bindings of that group: cluster-admin,
// or admin of given namespaces. A client certificate cannot be revoked;
// its bindings can: revoking deletes them, and the certificate is then
// worth what any authenticated user gets (discovery). No kubeconfig
// handed out is system:masters (the control-plane node's own admin.conf
// is, and stays on its disk).
const (
	userLabel       = "hepto.net/user"
	kubeconfigLabel = "hepto.net/kubeconfig"
	expiresAnnot    = "hepto.net/expires"
	kubeconfigGroup = "hepto:kubeconfig:"
	// DefaultUser is the kubeconfig's person when none is named.
	DefaultUser = localapi.DefaultUser
	// DefaultKubeconfigTTL is how long a kubeconfig lasts unless told.
	DefaultKubeconfigTTL = localapi.DefaultKubeconfigTTL
)

// ErrUnknownUser: no kubeconfig of that person to revoke; ErrBadUser: a
// request for a kubeconfig that cannot be made.
var (
	ErrUnknownUser = errors.New("no kubeconfig of that name")
	ErrBadUser     = errors.New("bad kubeconfig request")
)

// checkUser checks a person's name and namespaces.
func checkUser(req localapi.KubeconfigRequest) error {
	if errs := validation.IsDNS1123Subdomain(req.User); len(errs) > 0 {
		return fmt.Errorf("user %q: %s", req.User, strings.Join(errs, "; "))
	}
	for _, ns := range req.Namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
		}
	}
	if req.TTL < 0 {
		return fmt.Errorf("negative lifetime %s", req.TTL)
	}
	return nil
}

// UserKubeconfig makes a kubeconfig for a person: cluster admin, or admin
// of the namespaces named (made if missing), for req.TTL.
func (n *Node) UserKubeconfig(ctx context.Context, req localapi.KubeconfigRequest) ([]byte, error) {
	if req.User == "" {
		req.User = DefaultUser
	}
	if req.TTL == 0 {
		req.TTL = DefaultKubeconfigTTL
	}
	if err := checkUser(req); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadUser, err)
	}
	client, p, err := n.adminClient()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 4)
	rand.Read(b)
	id := hex.EncodeToString(b)
	expires := time.Now().Add(req.TTL).UTC()
	meta := metav1.ObjectMeta{
		Name:        "hepto-user-" + req.User + "-" + id,
		Labels:      map[string]string{userLabel: req.User, kubeconfigLabel: id},
		Annotations: map[string]string{expiresAnnot: expires.Format(time.RFC3339)},
	}
	subjects := []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: kubeconfigGroup + id}}
	if len(req.Namespaces) == 0 {
		_, err = client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: meta, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		}, metav1.CreateOptions{})
	}
	for _, ns := range req.Namespaces {
		_, err = client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			break
		}
		m := meta
		m.Namespace = ns
		_, err = client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: m, Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
		}, metav1.CreateOptions{})
		if err != nil {
			break
		}
	}
	if err != nil {
		n.deleteBindings(context.WithoutCancel(ctx), client, kubeconfigLabel+"="+id)
		return nil, fmt.Errorf("kubeconfig for %s: %w", req.User, err)
	}
	if err := waitAuthorized(ctx, client, req.User, kubeconfigGroup+id, req.Namespaces); err != nil {
		return nil, err
	}
	kp, err := p.Cluster.Issue(pki.Request{CommonName: req.User, Organization: []string{kubeconfigGroup + id}, Client: true, Validity: req.TTL})
	if err != nil {
		return nil, err
	}
	return controlplane.Kubeconfig(apiServerURL(n.o.Addresses[0]), p.Cluster.CertPEM, kp, req.User)
}

// waitAuthorized waits until the apiserver's authorizer knows the new
// bindings (it reads them from its cache), so that the kubeconfig works
// from its first request.
func waitAuthorized(ctx context.Context, client kubernetes.Interface, user, group string, namespaces []string) error {
	ns := "default"
	if len(namespaces) > 0 {
		ns = namespaces[0]
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user, Groups: []string{group, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "pods"},
	}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		r, err := client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err == nil && r.Status.Allowed {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the bindings of %s's kubeconfig are not in force after 10 s", user)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Kubeconfigs lists the kubeconfigs handed out and not revoked.
func (n *Node) Kubeconfigs(ctx context.Context) ([]localapi.KubeconfigEntry, error) {
	client, _, err := n.adminClient()
	if err != nil {
		return nil, err
	}
	sel := metav1.ListOptions{LabelSelector: kubeconfigLabel}
	crbs, err := client.RbacV1().ClusterRoleBindings().List(ctx, sel)
	if err != nil {
		return nil, err
	}
	rbs, err := client.RbacV1().RoleBindings("").List(ctx, sel)
	if err != nil {
		return nil, err
	}
	byID := map[string]*localapi.KubeconfigEntry{}
	add := func(m metav1.ObjectMeta) *localapi.KubeconfigEntry {
		id := m.Labels[kubeconfigLabel]
		e := byID[id]
		if e == nil {
			e = &localapi.KubeconfigEntry{User: m.Labels[userLabel], ID: id, Expires: m.Annotations[expiresAnnot]}
			byID[id] = e
		}
		return e
	}
	for _, b := range crbs.Items {
		add(b.ObjectMeta).ClusterAdmin = true
	}
	for _, b := range rbs.Items {
		e := add(b.ObjectMeta)
		e.Namespaces = append(e.Namespaces, b.Namespace)
	}
	out := []localapi.KubeconfigEntry{}
	for _, e := range byID {
		slices.Sort(e.Namespaces)
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b localapi.KubeconfigEntry) int {
		return strings.Compare(a.User+"/"+a.ID, b.User+"/"+b.ID)
	})
	return out, nil
}

// RevokeKubeconfigs takes their rights from every kubeconfig of user.
func (n *Node) RevokeKubeconfigs(ctx context.Context, user string) (int, error) {
	client, _, err := n.adminClient()
	if err != nil {
		return 0, err
	}
	count, err := n.deleteBindings(ctx, client, userLabel+"="+user)
	if err == nil && count == 0 {
		return 0, fmt.Errorf("%w: %q", ErrUnknownUser, user)
	}
	return count, err
}

// deleteBindings deletes the bindings that selector matches.
func (n *Node) deleteBindings(ctx context.Context, client kubernetes.Interface, selector string) (int, error) {
	sel := metav1.ListOptions{LabelSelector: selector}
	crbs, err := client.RbacV1().ClusterRoleBindings().List(ctx, sel)
	if err != nil {
		return 0, err
	}
	rbs, err := client.RbacV1().RoleBindings("").List(ctx, sel)
	if err != nil {
		return 0, err
	}
	var errs []error
	count := 0
	for _, b := range crbs.Items {
		if err := client.RbacV1().ClusterRoleBindings().Delete(ctx, b.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		} else {
			count++
		}
	}
	for _, b := range rbs.Items {
		if err := client.RbacV1().RoleBindings(b.Namespace).Delete(ctx, b.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		} else {
			count++
		}
	}
	return count, errors.Join(errs...)
}

// adminClient is a client with the control plane's admin credentials, and
// the PKI, on a control-plane node whose apiserver is up.
func (n *Node) adminClient() (kubernetes.Interface, *pki.PKI, error) {
	if n == nil || n.cp == nil || n.cp.PKI() == nil || n.cp.AdminConfig() == nil {
		return nil, nil, ErrNotControlPlane
	}
	client, err := kubernetes.NewForConfig(n.cp.AdminConfig())
	if err != nil {
		return nil, nil, err
	}
	return client, n.cp.PKI(), nil
}

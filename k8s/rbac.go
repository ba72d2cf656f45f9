package k8s

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/hepto-net/hepto/k8s/pki"
)

// dnsRole lets the nodes' own agents read what they serve: their DNS
// servers, what the Kubernetes DNS specification names (as CoreDNS's
// system:coredns role does); their network policy, the policies and the
// pods and namespaces they select.
var dnsRole = &rbacv1.ClusterRole{
	ObjectMeta: metav1.ObjectMeta{Name: pki.DNSGroup},
	Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"services", "pods", "namespaces"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "watch"}},
	},
}

var dnsBinding = &rbacv1.ClusterRoleBinding{
	ObjectMeta: metav1.ObjectMeta{Name: pki.DNSGroup},
	RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: pki.DNSGroup},
	Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: pki.DNSGroup}},
}

// ensureRBAC makes (or updates) the roles hepto's own clients need.
func ensureRBAC(ctx context.Context, c kubernetes.Interface) error {
	roles := c.RbacV1().ClusterRoles()
	if _, err := roles.Create(ctx, dnsRole, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		old, err := roles.Get(ctx, dnsRole.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("role %s: %w", dnsRole.Name, err)
		}
		old.Rules = dnsRole.Rules
		if _, err := roles.Update(ctx, old, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("role %s: %w", dnsRole.Name, err)
		}
	} else if err != nil {
		return fmt.Errorf("role %s: %w", dnsRole.Name, err)
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, dnsBinding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("role binding %s: %w", dnsBinding.Name, err)
	}
	return nil
}

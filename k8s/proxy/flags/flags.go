// Package flags holds kube-proxy's flags as hepto runs it, apart from
// kube-proxy itself: the Kubernetes benchmark gives the same flags to an
// upstream kube-proxy without linking one.
package flags

// Args are kube-proxy's flags: clusterCIDR and nodePorts are
// comma-separated prefixes, mode "nftables" or "iptables".
func Args(kubeconfig, name, bind, mode, clusterCIDR, nodePorts string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--hostname-override=" + name,
		"--bind-address=" + bind,
		"--proxy-mode=" + mode,
		"--cluster-cidr=" + clusterCIDR,
		"--nodeport-addresses=" + nodePorts,
		// Health (externalTrafficPolicy: Local) and metrics on loopback.
		"--healthz-bind-address=127.0.0.1:10256",
		"--metrics-bind-address=127.0.0.1:10249",
		// Leave the machine's conntrack sysctls alone: in a network
		// namespace, or without CAP_SYS_RESOURCE, setting them fails.
		"--conntrack-max-per-core=0",
		"--conntrack-tcp-timeout-established=0",
		"--conntrack-tcp-timeout-close-wait=0",
		"--oom-score-adj=0",
		"--profiling=false",
	}
}

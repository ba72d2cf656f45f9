//go:build !fabric

package kubebin

// Embedded tells whether this executable carries the full one: the full
// build runs Kubernetes itself.
const Embedded = false

// Exec fails: nothing is embedded.
func Exec([]string) error { return ErrNotEmbedded }

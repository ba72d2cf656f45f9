// Package membership defines who belongs to a cluster and how that is proven:
// the cluster's signing key, node records, the membership document that an
// anchor signs and pushes to every node, join tokens, and the address plan.
//
// Everything that crosses the network or sits on disk is a Signed envelope:
// the JSON payload as it was signed, with an Ed25519 signature over a
// domain-separated form of it, so that a token can never pass for a record.
package membership

// Package dns is the DNS server every node runs for its cluster: node names
// (NODE.<domain> and their PTR records) from the membership, the records of
// the Kubernetes DNS specification when the node runs Kubernetes, and a
// caching forwarder for every other name.
//
// Answers are kept packed: a query whose answer is known (a cached forwarded
// name, or a node name answered before) is served by copying the packed
// answer and patching its ID, question, flags and TTLs, without unpacking the
// query or packing a reply. Everything else takes the slow path through
// miekg/dns, which also builds what the fast path serves next time.
package dns

package publish

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"sigs.k8s.io/knftables"

	"github.com/hepto-net/hepto/localapi"
)

// Table is the nftables table (family inet) that counts the traffic
// kube-proxy carries for the node's published addresses.
const Table = "hepto-published"

// Counters count, per published address and port served by kube-proxy,
// new connections and bytes each way: conntrack's original tuple is the
// visitor's, before kube-proxy's translation, in both directions. The
// chain only counts; it decides nothing.
type Counters struct {
	nft   knftables.Interface
	mu    sync.Mutex
	fresh bool     // the table was made anew by this process
	keys  []string // the entries counted, sorted
}

// NewCounters needs the nft program (kube-proxy's nftables mode does too).
func NewCounters() (*Counters, error) {
	nft, err := knftables.New(knftables.InetFamily, Table)
	if err != nil {
		return nil, fmt.Errorf("published ports' counters: %w", err)
	}
	return &Counters{nft: nft}, nil
}

// counterName is an nftables name for key ("203.0.113.1 8088/tcp") and
// what it counts: c (connections), i (in), o (out).
func counterName(key, what string) string {
	r := strings.NewReplacer(".", "_", ":", "_", " ", "_", "/", "_")
	return "p_" + r.Replace(key) + "_" + what
}

// Sync counts the entries of want (kube-proxy's); counters of entries
// that stay keep their counts.
// Sync is called by one goroutine at a time; it writes nothing when the
// entries are the same as last time.
func (c *Counters) Sync(ctx context.Context, want map[string]localapi.Published) error {
	keys := slices.Sorted(maps.Keys(want))
	c.mu.Lock()
	same := c.fresh && slices.Equal(keys, c.keys)
	c.mu.Unlock()
	if same {
		return nil
	}
	tx := c.nft.NewTransaction()
	comment := knftables.PtrTo("traffic of the Services published on this node")
	tx.Add(&knftables.Table{Comment: comment})
	if !c.fresh {
		tx.Delete(&knftables.Table{})
		tx.Add(&knftables.Table{Comment: comment})
	}
	tx.Add(&knftables.Chain{Name: "count", Type: knftables.PtrTo(knftables.FilterType),
		Hook: knftables.PtrTo(knftables.ForwardHook), Priority: knftables.PtrTo(knftables.FilterPriority)})
	tx.Flush(&knftables.Chain{Name: "count"})
	keep := map[string]bool{}
	for key, p := range want {
		addr, port, ok := strings.Cut(key, " ")
		if !ok {
			continue
		}
		portNum, proto, _ := strings.Cut(port, "/")
		family := "ip"
		if strings.Contains(addr, ":") {
			family = "ip6"
		}
		match := fmt.Sprintf("meta l4proto %s ct original %s daddr %s ct original proto-dst %s", proto, family, addr, portNum)
		for what, rule := range map[string]string{
			"c": "ct direction original ct state new",
			"i": "ct direction original",
			"o": "ct direction reply",
		} {
			name := counterName(key, what)
			keep[name] = true
			tx.Add(&knftables.Counter{Name: name, Comment: knftables.PtrTo(p.Service)})
			tx.Add(&knftables.Rule{Chain: "count", Rule: match + " " + rule + " counter name " + name})
		}
	}
	if c.fresh {
		have, err := c.nft.ListCounters(ctx)
		if err == nil {
			for _, h := range have {
				if !keep[h.Name] {
					tx.Delete(&knftables.Counter{Name: h.Name})
				}
			}
		}
	}
	if err := c.nft.Run(ctx, tx); err != nil {
		return err
	}
	c.mu.Lock()
	c.fresh, c.keys = true, keys
	c.mu.Unlock()
	return nil
}

// Read gives the counts by entry key.
func (c *Counters) Read(ctx context.Context) (map[string]Counts, error) {
	list, err := c.nft.ListCounters(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]uint64{}
	for _, l := range list {
		if l.Packets != nil && l.Bytes != nil {
			byName[l.Name] = *l.Bytes
			if strings.HasSuffix(l.Name, "_c") {
				byName[l.Name] = *l.Packets
			}
		}
	}
	out := map[string]Counts{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range c.keys {
		out[k] = Counts{Connections: byName[counterName(k, "c")], BytesIn: byName[counterName(k, "i")], BytesOut: byName[counterName(k, "o")]}
	}
	return out, nil
}

package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// upstreamTimeout bounds one exchange with one upstream resolver; a query
// tries each in turn, as the stub resolver does with resolv.conf.
const upstreamTimeout = 2 * time.Second

// Exchanger asks an upstream resolver. The server's is a forwarder to the
// configured resolvers; tests put their own.
type Exchanger interface {
	Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error)
}

// forwarder asks the node's resolvers, in order, over UDP, and over TCP
// when an answer comes back truncated.
type forwarder struct {
	upstreams []netip.AddrPort
	udp, tcp  *dns.Client
	metrics   *Metrics
}

func newForwarder(ups []netip.AddrPort, m *Metrics) *forwarder {
	return &forwarder{
		upstreams: ups,
		// The query advertises ourUDPSize; the read buffer takes what a
		// resolver that ignores it sends all the same.
		udp:     &dns.Client{Net: "udp", UDPSize: dns.MaxMsgSize, Timeout: upstreamTimeout},
		tcp:     &dns.Client{Net: "tcp", Timeout: upstreamTimeout},
		metrics: m,
	}
}

var errNoUpstream = errors.New("dns: no upstream resolver")

// Exchange returns the first answer that is not a failure (SERVFAIL,
// REFUSED), or the last failure.
func (f *forwarder) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	if len(f.upstreams) == 0 {
		return nil, errNoUpstream
	}
	var errs []error
	var last *dns.Msg
	for _, up := range f.upstreams {
		start := time.Now()
		r, err := f.exchange(ctx, q, up.String())
		f.metrics.upstreamDuration.Observe(time.Since(start).Seconds())
		if err != nil {
			f.metrics.upstreamErrors.WithLabelValues(up.String()).Inc()
			errs = append(errs, fmt.Errorf("%s: %w", up, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if r.Rcode == dns.RcodeServerFailure || r.Rcode == dns.RcodeRefused {
			f.metrics.upstreamErrors.WithLabelValues(up.String()).Inc()
			last = r
			continue
		}
		return r, nil
	}
	if last != nil {
		return last, nil
	}
	return nil, errors.Join(errs...)
}

func (f *forwarder) exchange(ctx context.Context, q *dns.Msg, addr string) (*dns.Msg, error) {
	r, _, err := f.udp.ExchangeContext(ctx, q, addr)
	if err == nil && r.Truncated {
		r, _, err = f.tcp.ExchangeContext(ctx, q, addr)
	}
	if err != nil {
		return nil, err
	}
	// miekg/dns checks the ID; the question must match too, or the answer
	// is not for us (RFC 5452 §9.1).
	if len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, q.Question[0].Name) ||
		r.Question[0].Qtype != q.Question[0].Qtype || r.Question[0].Qclass != q.Question[0].Qclass {
		return nil, errors.New("answer to another question")
	}
	return r, nil
}

// cacheTTL is how long an upstream answer may be kept: the smallest TTL of
// its records for a positive answer; for a negative one, the smaller of
// the SOA's TTL and MINIMUM (RFC 2308 §5), and not at all without a SOA.
// Other answers are not kept. The answer's TTLs are capped to the result.
func cacheTTL(r *dns.Msg) time.Duration {
	if r.Truncated || (r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError) {
		return 0
	}
	var ttl uint32
	if r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0 {
		ttl = maxCacheTTL
		for _, sec := range [][]dns.RR{r.Answer, r.Ns, r.Extra} {
			for _, rr := range sec {
				if h := rr.Header(); h.Rrtype != dns.TypeOPT {
					ttl = min(ttl, h.Ttl)
				}
			}
		}
	} else {
		for _, rr := range r.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl = min(soa.Hdr.Ttl, soa.Minttl, maxNegTTL)
				break
			}
		}
	}
	for _, sec := range [][]dns.RR{r.Answer, r.Ns, r.Extra} {
		for _, rr := range sec {
			if h := rr.Header(); h.Rrtype != dns.TypeOPT && h.Ttl > ttl {
				h.Ttl = ttl
			}
		}
	}
	return time.Duration(ttl) * time.Second
}

// Bounds of cached TTLs: an hour for answers (RFC 8767 asks for a cap), and
// RFC 2308 §5's advice for negative answers, lowered to a quarter hour so
// that a name just created appears soon.
const (
	maxCacheTTL = 3600
	maxNegTTL   = 900
)

// flight merges concurrent misses for one key into one upstream query.
type flight struct {
	mu    sync.Mutex
	calls map[string]*call
}

type call struct {
	done chan struct{}
	e    *entry
	err  error
}

func (f *flight) do(key string, fn func() (*entry, error)) (*entry, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]*call{}
	}
	if c, ok := f.calls[key]; ok {
		f.mu.Unlock()
		<-c.done
		return c.e, c.err
	}
	c := &call{done: make(chan struct{})}
	f.calls[key] = c
	f.mu.Unlock()
	c.e, c.err = fn()
	f.mu.Lock()
	delete(f.calls, key)
	f.mu.Unlock()
	close(c.done)
	return c.e, c.err
}

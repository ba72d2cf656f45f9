package dns

import (
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the server's Prometheus collectors, hepto_dns_…. One Metrics
// serves one Server; Register adds them to a registry.
type Metrics struct {
	queries          *prometheus.CounterVec
	responses        *prometheus.CounterVec
	cacheHits        prometheus.Counter
	cacheMisses      prometheus.Counter
	cacheStale       prometheus.Counter
	dropped          prometheus.Counter
	upstreamErrors   *prometheus.CounterVec
	upstreamDuration prometheus.Histogram
	duration         *prometheus.HistogramVec
	cacheEntries     prometheus.GaugeFunc
	cacheBytes       prometheus.GaugeFunc

	// Resolved once: WithLabelValues costs a hash a query.
	udp, tcp prometheus.Counter
	rcodes   [6]prometheus.Counter
	kinds    [numKinds]prometheus.Observer
	cache    atomic.Pointer[cache]
}

// kind is where an answer came from, the label of the latency histogram.
type kind int

const (
	kindLocal   kind = iota // node names, Kubernetes: answered with authority
	kindCache               // forwarded name, from the cache
	kindForward             // forwarded name, asked upstream
	kindError               // refused, malformed, or upstream failure
	numKinds
)

var kindNames = [numKinds]string{"local", "cache", "forward", "error"}

// NewMetrics makes the collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hepto_dns_queries_total", Help: "DNS queries received, by transport.",
		}, []string{"proto"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hepto_dns_responses_total", Help: "DNS responses sent, by response code.",
		}, []string{"rcode"}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hepto_dns_cache_hits_total", Help: "Forwarded names answered from the cache, stale answers included.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hepto_dns_cache_misses_total", Help: "Forwarded names not in the cache, or expired.",
		}),
		cacheStale: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hepto_dns_cache_stale_total", Help: "Expired answers served because the upstream resolvers failed.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hepto_dns_dropped_total", Help: "Queries dropped: unreadable, or too many waiting for upstream.",
		}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hepto_dns_upstream_errors_total", Help: "Upstream exchanges that failed: no answer, SERVFAIL or REFUSED.",
		}, []string{"upstream"}),
		upstreamDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hepto_dns_upstream_duration_seconds", Help: "Time of exchanges with upstream resolvers.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hepto_dns_request_duration_seconds", Help: "Time to answer a query, by where the answer came from.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10),
		}, []string{"answer"}),
	}
	m.cacheEntries = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hepto_dns_cache_entries", Help: "Answers held in the forwarding cache.",
	}, func() float64 {
		if c := m.cache.Load(); c != nil {
			return float64(c.count.Load())
		}
		return 0
	})
	m.cacheBytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "hepto_dns_cache_bytes", Help: "Bytes the forwarding cache accounts for.",
	}, func() float64 {
		if c := m.cache.Load(); c != nil {
			return float64(c.bytes.Load())
		}
		return 0
	})
	m.udp, m.tcp = m.queries.WithLabelValues("udp"), m.queries.WithLabelValues("tcp")
	for rc := range m.rcodes {
		m.rcodes[rc] = m.responses.WithLabelValues(dns.RcodeToString[rc])
	}
	for k := range m.kinds {
		m.kinds[k] = m.duration.WithLabelValues(kindNames[k])
	}
	return m
}

// Collectors returns every collector, for a registry.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.queries, m.responses, m.cacheHits, m.cacheMisses, m.cacheStale, m.dropped,
		m.upstreamErrors, m.upstreamDuration, m.duration, m.cacheEntries, m.cacheBytes}
}

// Register adds the collectors to r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range m.Collectors() {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (m *Metrics) response(rcode int) {
	if rcode >= 0 && rcode < len(m.rcodes) {
		m.rcodes[rcode].Inc()
		return
	}
	name, ok := dns.RcodeToString[rcode]
	if !ok {
		name = "other"
	}
	m.responses.WithLabelValues(name).Inc()
}

package metrics

import "github.com/prometheus/client_golang/prometheus"

// Published is one Service port the node serves on a public address.
type Published struct {
	Service, Address, Protocol string
	Connections                uint64
	Open                       int64
	BytesIn, BytesOut          uint64
}

var (
	publishedLabels = []string{"service", "address", "protocol"}
	descPubConns    = prometheus.NewDesc("hepto_published_connections_total", "Connections (TCP) or visitors (UDP) to a Service published on this node's public address.", publishedLabels, nil)
	descPubOpen     = prometheus.NewDesc("hepto_published_open_connections", "Connections open now through hepto's proxy (not counted for kube-proxy's).", publishedLabels, nil)
	descPubBytes    = prometheus.NewDesc("hepto_published_bytes_total", "Bytes of a published Service, from visitors (in) and to them (out).", append(publishedLabels, "direction"), nil)
)

type publishedCollector struct{ list func() []Published }

func (c publishedCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPubConns, descPubOpen, descPubBytes} {
		ch <- d
	}
}

func (c publishedCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.list() {
		ch <- prometheus.MustNewConstMetric(descPubConns, prometheus.CounterValue, float64(p.Connections), p.Service, p.Address, p.Protocol)
		ch <- prometheus.MustNewConstMetric(descPubOpen, prometheus.GaugeValue, float64(p.Open), p.Service, p.Address, p.Protocol)
		ch <- prometheus.MustNewConstMetric(descPubBytes, prometheus.CounterValue, float64(p.BytesIn), p.Service, p.Address, p.Protocol, "in")
		ch <- prometheus.MustNewConstMetric(descPubBytes, prometheus.CounterValue, float64(p.BytesOut), p.Service, p.Address, p.Protocol, "out")
	}
}

// Published registers the published Services' metrics, read through list
// at each scrape.
func (m *Metrics) Published(list func() []Published) {
	m.Registry.MustRegister(publishedCollector{list})
}

// Package metrics exports a node's state for Prometheus: the links to its
// peers first of all (round-trip time, path, traffic, handshakes), then
// ICE and TURN, and the process.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddr is where metrics are served unless told otherwise: loopback.
// In a cluster, the node's overlay address is the usual choice; never the
// Internet side.
const DefaultAddr = "127.0.0.1:9469"

// RTTBuckets suit home links: 0.5 ms (one LAN) to 5 s (a saturated uplink).
var RTTBuckets = []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5}

// Peer is one peer as seen at scrape time.
type Peer struct {
	Name          string
	Path          string // "direct" or "relay"
	Up            bool
	RxBytes       uint64
	TxBytes       uint64
	LastHandshake time.Time
	PathChanges   uint64
	ICEState      string // "", "checking", "connected", ...: ICE pairs only
}

// Metrics is a node's registry.
type Metrics struct {
	Registry *prometheus.Registry
	rtt      *prometheus.HistogramVec
	turn     *TURN
}

var (
	descUp        = prometheus.NewDesc("hepto_peer_up", "Whether the link to the peer is up (handshake within 3 minutes and path alive), by path.", []string{"peer", "path"}, nil)
	descRx        = prometheus.NewDesc("hepto_peer_rx_bytes_total", "Bytes received from the peer through WireGuard.", []string{"peer"}, nil)
	descTx        = prometheus.NewDesc("hepto_peer_tx_bytes_total", "Bytes sent to the peer through WireGuard.", []string{"peer"}, nil)
	descHandshake = prometheus.NewDesc("hepto_peer_last_handshake_timestamp_seconds", "Time of the last WireGuard handshake with the peer (0: never).", []string{"peer"}, nil)
	descChanges   = prometheus.NewDesc("hepto_peer_path_changes_total", "Times the path to the peer changed (found, lost, switched).", []string{"peer"}, nil)
	descICE       = prometheus.NewDesc("hepto_peer_ice_state", "ICE state of the pair (1 for the current state).", []string{"peer", "state"}, nil)
	descPeers     = prometheus.NewDesc("hepto_peers", "Peers in the membership.", nil, nil)
)

// peerCollector reads the peers at scrape time.
type peerCollector struct{ peers func() []Peer }

func (c peerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descRx, descTx, descHandshake, descChanges, descICE, descPeers} {
		ch <- d
	}
}

func (c peerCollector) Collect(ch chan<- prometheus.Metric) {
	peers := c.peers()
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(len(peers)))
	for _, p := range peers {
		for _, path := range []string{"direct", "relay"} {
			v := 0.0
			if p.Up && p.Path == path {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, v, p.Name, path)
		}
		ch <- prometheus.MustNewConstMetric(descRx, prometheus.CounterValue, float64(p.RxBytes), p.Name)
		ch <- prometheus.MustNewConstMetric(descTx, prometheus.CounterValue, float64(p.TxBytes), p.Name)
		hs := 0.0
		if !p.LastHandshake.IsZero() {
			hs = float64(p.LastHandshake.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(descHandshake, prometheus.GaugeValue, hs, p.Name)
		ch <- prometheus.MustNewConstMetric(descChanges, prometheus.CounterValue, float64(p.PathChanges), p.Name)
		if p.ICEState != "" {
			ch <- prometheus.MustNewConstMetric(descICE, prometheus.GaugeValue, 1, p.Name, p.ICEState)
		}
	}
}

// New makes a registry with the process and Go collectors, and the peer
// metrics read through peers at each scrape.
func New(peers func() []Peer) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		rtt: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hepto_peer_rtt_seconds",
			Help:    "Round-trip time to the peer through the overlay.",
			Buckets: RTTBuckets,
		}, []string{"peer"}),
	}
	reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		peerCollector{peers},
		m.rtt,
	)
	return m
}

// ObserveRTT records a round trip to peer.
func (m *Metrics) ObserveRTT(peer string, d time.Duration) {
	m.rtt.WithLabelValues(peer).Observe(d.Seconds())
}

// Serve serves /metrics on addr until ctx is done.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var (
	descService   = prometheus.NewDesc("hepto_service_up", "Whether the node's service runs (1) or has failed and waits to be restarted (0).", []string{"service"}, nil)
	descComponent = prometheus.NewDesc("hepto_component_up", "Whether the Kubernetes component runs on this node.", []string{"component"}, nil)
)

// upCollector reads, at scrape time, whether each of a set of parts is up.
type upCollector struct {
	desc *prometheus.Desc
	up   func() map[string]bool
}

func (c upCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c upCollector) Collect(ch chan<- prometheus.Metric) {
	for name, up := range c.up() {
		v := 0.0
		if up {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, name)
	}
}

// Services registers hepto_service_up, read through up at each scrape.
func (m *Metrics) Services(up func() map[string]bool) {
	m.Registry.MustRegister(upCollector{descService, up})
}

// Components registers hepto_component_up, read through up at each scrape.
func (m *Metrics) Components(up func() map[string]bool) {
	m.Registry.MustRegister(upCollector{descComponent, up})
}

package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// TURN counts an anchor's relays.
type TURN struct {
	Allocations prometheus.Gauge
	Relayed     *prometheus.CounterVec // by direction
}

// TURN registers and returns the anchor's TURN metrics.
func (m *Metrics) TURN() *TURN {
	if m.turn != nil {
		return m.turn
	}
	m.turn = &TURN{
		Allocations: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hepto_turn_allocations",
			Help: "TURN allocations open on this anchor.",
		}),
		Relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hepto_turn_relayed_bytes_total",
			Help: "Bytes relayed by this anchor's TURN server, by direction seen from the relay (in: from peers, out: to peers).",
		}, []string{"direction"}),
	}
	m.Registry.MustRegister(m.turn.Allocations, m.turn.Relayed)
	return m.turn
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
)

// prometheus runs Debian's Prometheus in a lab host, on its loopback,
// scraping targets every 2 s; query asks its HTTP API.
type prometheus struct {
	t    *testing.T
	host *lab.Host
	http *http.Client
}

func startPrometheus(t *testing.T, w *world, h *lab.Host, targets []string) *prometheus {
	t.Helper()
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Fatal("prometheus not installed (Debian package prometheus; make deps installs it)")
	}
	dir := t.TempDir()
	conf := fmt.Sprintf("global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\nscrape_configs:\n- job_name: hepto\n  static_configs:\n  - targets: [%s]\n",
		`"`+strings.Join(targets, `", "`)+`"`)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Start(w.ctx, filepath.Join(dir, "prometheus.log"), "prometheus",
		"--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:9090"); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{t: t, host: h, http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, n, a string) (net.Conn, error) { return h.DialContext(ctx, n, a) },
	}}}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("--- prometheus log\n%s", b)
		}
	})
	return p
}

type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (p *prometheus) query(q string) ([]sample, error) {
	resp, err := p.http.Get("http://127.0.0.1:9090/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []sample `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, r.Error)
	}
	return r.Data.Result, nil
}

func value(s sample) float64 {
	var v float64
	fmt.Sscan(fmt.Sprint(s.Value[1]), &v)
	return v
}

// Three homes and an anchor, scraped by a real Prometheus over the
// overlay; a delayed uplink shows in the RTT of that home's links only.
func TestObservability(t *testing.T) {
	// Round trips are measured 5 s after start, then every rttInterval.
	const rttInterval = 5 * time.Second
	// Time for Prometheus to start and scrape (every 2 s), and a few intervals.
	const rttWait = 30*time.Second + 4*rttInterval
	flags := []string{"--metrics", "overlay:9469", "--rtt-interval", rttInterval.String()}
	w := newWorld(t)
	a := w.wrap(w.c.Anchor("anchor", w.publicHost("anchor"), flags...))
	names := []string{"home-a", "home-b", "home-c"}
	homes := map[string]*lab.Home{}
	nodes := map[string]*node{"anchor": a}
	for _, name := range names {
		nat := lab.EIM
		if name == "home-c" {
			nat = lab.Symmetric
		}
		homes[name] = w.home(name, lab.HomeOptions{NAT: nat})
		nodes[name] = w.join(name, homes[name].Machines[0], a, flags...)
	}
	ips := map[string]string{}
	var targets []string
	for name, n := range nodes {
		st := n.waitConnected(60*time.Second, others(nodes, name)...)
		ips[name] = st.OverlayIPs[0]
		targets = append(targets, st.OverlayIPs[0]+":9469")
	}
	nodes["home-a"].waitPath(30*time.Second, "home-b", "direct")
	nodes["home-a"].waitPath(40*time.Second, "home-c", "relay")

	t.Run("promtool", func(t *testing.T) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, n, addr string) (net.Conn, error) {
			return a.Host.DialContext(ctx, n, addr)
		}}}
		var text []byte
		eventually(t, rttWait, func() error {
			resp, err := c.Get("http://" + ips["home-a"] + ":9469/metrics")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			text, _ = io.ReadAll(resp.Body)
			if !strings.Contains(string(text), "hepto_peer_rtt_seconds_bucket") {
				return fmt.Errorf("no RTT measured yet")
			}
			return nil
		})
		for _, m := range []string{"hepto_peer_rtt_seconds_bucket", "hepto_peer_up", "hepto_peer_rx_bytes_total", "hepto_peer_tx_bytes_total", "hepto_peer_last_handshake_timestamp_seconds", "hepto_peer_path_changes_total", "process_resident_memory_bytes"} {
			if !strings.Contains(string(text), m) {
				t.Errorf("no %s in the scrape", m)
			}
		}
		check := exec.Command("promtool", "check", "metrics")
		check.Stdin = strings.NewReader(string(text))
		if out, err := check.CombinedOutput(); err != nil {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
	})

	t.Run("ping and netcheck", func(t *testing.T) {
		out, err := nodes["home-a"].Hepto("ping", "-c", "2", "home-b")
		if err != nil || !strings.Contains(out, "(direct)") || !strings.Contains(out, homes["home-b"].PublicIP.String()) {
			t.Fatalf("hepto ping home-b: %v\n%s", err, out)
		}
		out, err = nodes["home-a"].Hepto("ping", "-c", "1", "home-c")
		if err != nil || !strings.Contains(out, "(relay") {
			t.Fatalf("hepto ping home-c: %v\n%s", err, out)
		}
		if _, err := nodes["home-a"].Hepto("ping", "-c", "1", "nobody"); err == nil {
			t.Fatal("ping of an unknown node succeeded")
		}
		for name, want := range map[string]string{"home-a": "endpoint-independent", "home-c": "endpoint-dependent", "anchor": "none"} {
			out, err := nodes[name].Hepto("netcheck", "--json")
			if err != nil {
				t.Fatal(err)
			}
			var nc struct {
				NAT        string `json:"nat"`
				PublicIPv4 string `json:"public_ipv4"`
			}
			if err := json.Unmarshal([]byte(out), &nc); err != nil {
				t.Fatalf("%s: netcheck --json: %v:\n%s", name, err, out)
			}
			if nc.NAT != want {
				t.Errorf("%s: netcheck says %q, want %q:\n%s", name, nc.NAT, want, out)
			}
			if name != "anchor" && nc.PublicIPv4 != homes[name].PublicIP.String() {
				t.Errorf("%s: public IPv4 %q, want %s", name, nc.PublicIPv4, homes[name].PublicIP)
			}
		}
	})

	prom := startPrometheus(t, w, a.Host, targets)
	t.Run("RTT of every pair in Prometheus", func(t *testing.T) {
		eventually(t, rttWait, func() error {
			res, err := prom.query("hepto_peer_rtt_seconds_count")
			if err != nil {
				return err
			}
			pairs := map[string]bool{}
			for _, s := range res {
				pairs[s.Metric["instance"]+" "+s.Metric["peer"]] = true
			}
			for name := range nodes {
				for _, other := range others(nodes, name) {
					if !pairs[ips[name]+":9469 "+other] {
						return fmt.Errorf("no RTT series for %s → %s (have %d)", name, other, len(pairs))
					}
				}
			}
			return nil
		})
	})

	t.Run("delay on one uplink", func(t *testing.T) {
		if err := homes["home-a"].SetDelay(25*time.Millisecond, 0); err != nil { // each way
			t.Fatal(err)
		}
		since := time.Now()
		delayed := map[string]bool{} // pairs whose histogram showed the delay
		// The delay shows in the next measurements and within the 45 s
		// window of the histogram query.
		eventually(t, 45*time.Second+rttWait, func() error {
			st, _, err := nodes["home-a"].status()
			if err != nil {
				return err
			}
			for _, p := range st.Peers {
				if p.RTTSeconds == nil || *p.RTTSeconds < 0.05 {
					return fmt.Errorf("home-a → %s: rtt %v", p.Name, p.RTTSeconds)
				}
			}
			// Observations above 50 ms (a bucket bound) in the last 45 s, per pair.
			res, err := prom.query(`increase(hepto_peer_rtt_seconds_count[45s]) - ignoring(le) increase(hepto_peer_rtt_seconds_bucket{le="0.05"}[45s])`)
			if err != nil {
				return err
			}
			for _, s := range res {
				pair := s.Metric["instance"] + " → " + s.Metric["peer"]
				involvesA := s.Metric["instance"] == ips["home-a"]+":9469" || s.Metric["peer"] == "home-a"
				slow := value(s) > 0.5 // increase() extrapolates
				if slow && !involvesA {
					t.Fatalf("histogram %s: %.1f observations ≥ 50 ms without delay", pair, value(s))
				}
				if slow {
					delayed[pair] = true
				}
			}
			if len(delayed) < 2*3 {
				return fmt.Errorf("delay seen in %d of 6 pairs' histograms so far", len(delayed))
			}
			return nil
		})
		t.Logf("delay visible in status and histogram after %s", time.Since(since).Round(time.Second))
		// The others' links stay fast in their status too.
		st, _, err := nodes["home-b"].status()
		if err != nil {
			t.Fatal(err)
		}
		fast := 0
		for _, p := range st.Peers {
			if p.Name == "home-a" {
				continue
			}
			if p.RTTSeconds == nil {
				t.Errorf("home-b → %s: no RTT", p.Name)
			} else if *p.RTTSeconds >= 0.05 {
				t.Errorf("home-b → %s: %.4f s", p.Name, *p.RTTSeconds)
			} else {
				fast++
			}
		}
		if fast != 2 {
			t.Fatalf("home-b: %d fast peers besides home-a, want 2 (anchor, home-c): %+v", fast, st.Peers)
		}
	})
}

func others(nodes map[string]*node, self string) []string {
	var out []string
	for name := range nodes {
		if name != self {
			out = append(out, name)
		}
	}
	return out
}

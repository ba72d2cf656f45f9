package lab_test

import (
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
)

// BenchmarkUplinkTCP measures iperf3 from a home machine, through its box and
// uplink, to a public host.
func BenchmarkUplinkTCP(b *testing.B) {
	for _, s := range []lab.Shaping{lab.ShapeNone, lab.ShapeWire} {
		b.Run(s.String(), func(b *testing.B) { benchUplink(b, s) })
	}
}

func benchUplink(b *testing.B, s lab.Shaping) {
	l := benchLab(b, s)
	anchor, err := l.AddPublicHost("anchor")
	if err != nil {
		b.Fatal(err)
	}
	home, err := l.AddHome("a", lab.HomeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	iperf(b, anchor, home.Machines[0])
}

// BenchmarkVethTCP is the same between two public hosts: plain veths and a bridge.
func BenchmarkVethTCP(b *testing.B) {
	l := benchLab(b, lab.ShapeNone)
	anchor, err := l.AddPublicHost("anchor")
	if err != nil {
		b.Fatal(err)
	}
	vps, err := l.AddPublicHost("vps")
	if err != nil {
		b.Fatal(err)
	}
	iperf(b, anchor, vps)
}

func benchLab(b *testing.B, s lab.Shaping) *lab.Lab {
	lab.NeedRoot(b)
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Fatal("needs iperf3: apt-get install -y iperf3 (make deps)")
	}
	return lab.ForTest(b, lab.Options{Shaping: s})
}

func iperf(b *testing.B, server, client *lab.Host) {
	if _, err := server.Start(b.Context(), "", "iperf3", "-s", "-1"); err != nil {
		b.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	for b.Loop() {
		out, err := client.Run(b.Context(), "iperf3", "-J", "-t", "3", "-c", server.IPv4.String())
		if err != nil {
			b.Fatal(err)
		}
		var r struct {
			End struct {
				Received struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.End.Received.BitsPerSecond/1e9, "Gbit/s")
	}
}

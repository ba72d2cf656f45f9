package tunnel

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLoad measures throughput and peak RSS under a 4-stream iperf3 between
// two TUN tunnels, bounded and, with HEPTO_TUNNEL_LOAD=stock, with stock
// wireguard-go's pools and batches. It takes about 15 s per mode, so it
// runs only when HEPTO_TUNNEL_LOAD is set.
func TestLoad(t *testing.T) {
	mode := os.Getenv("HEPTO_TUNNEL_LOAD")
	if mode == "" {
		t.Skip("set HEPTO_TUNNEL_LOAD=1 (or =stock) to run the iperf3 load test")
	}
	needTool(t, "iperf3")
	secs := 10
	if s, err := strconv.Atoi(os.Getenv("HEPTO_TUNNEL_LOAD_SECONDS")); err == nil {
		secs = s
	}
	l := newPairLab(t)
	var env []string
	if mode == "stock" {
		env = append(env, "HEPTO_TUNNEL_STOCK=1")
	}
	for _, v := range []string{"HEPTO_TUNNEL_CAP", "HEPTO_TUNNEL_BATCH", "GOGC", "GOMAXPROCS"} {
		if os.Getenv(v) != "" {
			env = append(env, v+"="+os.Getenv(v))
		}
	}
	a := startNode(t, l.a, 1, false, env...)
	b := startNode(t, l.b, 2, false, env...)
	connect(l, a, b)
	systemPing(t, l.a, b.v4)

	srv := execCommand("ip", "netns", "exec", l.b, "iperf3", "-s", "-1", "-B", b.v4)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	time.Sleep(300 * time.Millisecond)
	out, err := execCommand("ip", "netns", "exec", l.a, "iperf3", "-c", b.v4, "-P", "4",
		"-t", strconv.Itoa(secs), "-J").Output()
	if err != nil {
		t.Fatalf("iperf3: %v\n%s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	gbps := res.End.SumReceived.BitsPerSecond / 1e9
	hwmA, hwmB := peakRSS(t, a.h.pid), peakRSS(t, b.h.pid)
	t.Logf("mode=%s: %.2f Gbit/s, peak RSS sender %d MiB, receiver %d MiB", mode, gbps, hwmA>>10, hwmB>>10)
	if mode != "stock" && max(hwmA, hwmB) > 64<<10 {
		t.Errorf("peak RSS %d KiB over 64 MiB", max(hwmA, hwmB))
	}
}

// peakRSS reads VmHWM, in KiB.
func peakRSS(t *testing.T, pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

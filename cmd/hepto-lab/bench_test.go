package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := medianDuration([]time.Duration{3 * time.Second, time.Second, 2 * time.Second}); got != 2*time.Second {
		t.Errorf("medianDuration: %v", got)
	}
}

func TestPrintResultsMedians(t *testing.T) {
	// Three alternated rounds: medians per path, ratio of medians.
	var rs []result
	for _, g := range [][2]float64{{3, 6}, {2, 3}, {4, 9}} {
		rs = append(rs, result{path: "wireguard-go", streams: 1, gbps: g[0], cpuPerG: 4, rssMB: 300},
			result{path: "hepto", streams: 1, gbps: g[1], cpuPerG: 3, rssMB: 40 + g[0]})
	}
	var out bytes.Buffer
	printResults(&out, rs)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("table:\n%s", out.String())
	}
	for _, want := range [][]string{{"wireguard-go", "3", "3.00", "2.00–4.00", "1.00", "4.00", "300"}, {"hepto", "3", "6.00", "3.00–9.00", "2.00", "3.00", "44"}} {
		f := strings.Fields(lines[slicesIndex(lines, want[0])])
		if strings.Join(f[2:], " ") != strings.Join(want[1:], " ") {
			t.Errorf("%s: %v, want %v", want[0], f[2:], want[1:])
		}
	}
}

func slicesIndex(lines []string, prefix string) int {
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), prefix+" ") {
			return i
		}
	}
	return 0
}

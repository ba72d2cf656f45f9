// Package ports reads and writes the port ranges a node reserves on its
// public addresses (the hepto.net/reserved-ports annotation, --relay-ports).
package ports

import (
	"fmt"
	"strconv"
	"strings"
)

// Range is a range of ports of one protocol ("tcp" or "udp"),
// inclusive.
type Range struct {
	Proto    string
	Min, Max uint16
}

func (r Range) String() string {
	if r.Min == r.Max {
		return fmt.Sprintf("%d/%s", r.Min, r.Proto)
	}
	return fmt.Sprintf("%d-%d/%s", r.Min, r.Max, r.Proto)
}

// Has tells whether port of proto is in r.
func (r Range) Has(proto string, port uint16) bool {
	return r.Proto == proto && r.Min <= port && port <= r.Max
}

// Format is the reserved-ports annotation of rs.
func Format(rs []Range) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

// Parse reads a reserved-ports annotation: "PORT/PROTO" or
// "MIN-MAX/PROTO", comma-separated.
func Parse(s string) ([]Range, error) {
	var out []Range
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		r, err := ParseRange(item)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// ParseRange reads "PORT/PROTO" or "MIN-MAX/PROTO"; PROTO is tcp or
// udp, and "MIN-MAX" alone is taken as UDP (relay ports).
func ParseRange(s string) (Range, error) {
	ports, proto, ok := strings.Cut(s, "/")
	if !ok {
		proto = "udp"
	}
	proto = strings.ToLower(proto)
	if proto != "tcp" && proto != "udp" {
		return Range{}, fmt.Errorf("ports %q: protocol %q, want tcp or udp", s, proto)
	}
	lo, hi, isRange := strings.Cut(ports, "-")
	if !isRange {
		hi = lo
	}
	min, err1 := strconv.ParseUint(lo, 10, 16)
	max, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || min == 0 || min > max {
		return Range{}, fmt.Errorf("ports %q: want PORT or MIN-MAX, from 1 to 65535", s)
	}
	return Range{Proto: proto, Min: uint16(min), Max: uint16(max)}, nil
}

package lab

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Shaping is how homes' uplinks get their delay and loss.
type Shaping int

const (
	// ShapeAuto is ShapeNetem when the kernel has sch_netem, else ShapeWire.
	ShapeAuto Shaping = iota
	// ShapeNetem makes the uplink a veth pair with tc netem on both ends.
	ShapeNetem
	// ShapeWire makes the uplink two TAP devices joined by the lab's own
	// process, which delays and drops frames itself: for kernels without
	// netem. It carries offloaded 64 KiB frames, but costs CPU in the lab's
	// process, and the uplink dies with it.
	ShapeWire
	// ShapeNone makes the uplink a plain veth pair, the fastest, and refuses
	// delay and loss: for benchmarks.
	ShapeNone
)

func (s Shaping) String() string {
	switch s {
	case ShapeAuto:
		return "auto"
	case ShapeNetem:
		return "netem"
	case ShapeWire:
		return "wire"
	case ShapeNone:
		return "none"
	}
	return "Shaping(" + strconv.Itoa(int(s)) + ")"
}

// ErrNoNetem is New's error when ShapeNetem is asked of a kernel without it.
var ErrNoNetem = errors.New("lab: tc netem unavailable (kernel without CONFIG_NET_SCH_NETEM)")

// pickShaping resolves ShapeAuto by trying netem on the Internet's loopback.
func (l *Lab) pickShaping(want Shaping) (Shaping, error) {
	if want == ShapeWire || want == ShapeNone {
		return want, nil
	}
	ns := l.Internet.Netns
	_, err := l.run(l.ctx, "", "tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms")
	if err == nil {
		_, err = l.run(l.ctx, "", "tc", "-n", ns, "qdisc", "del", "dev", "lo", "root")
		return ShapeNetem, err
	}
	if want == ShapeNetem {
		return 0, fmt.Errorf("%w: %w", ErrNoNetem, err)
	}
	l.log.Info("tc netem unavailable: homes' uplinks are userspace wires")
	return ShapeWire, nil
}

// uplink links a new home's box (its "wan") to the Internet bridge (as port).
func (l *Lab) uplink(box *Host, port string) (*wire, error) {
	if l.shaping != ShapeWire {
		return nil, l.ip(l.Internet.Netns,
			fmt.Sprintf("link add %s type veth peer name wan netns %s", port, box.Netns),
			fmt.Sprintf("link set %s master br0 up", port),
		)
	}
	var inet, wan *os.File
	if err := l.Internet.Do(func() (err error) { inet, err = openTap(port); return err }); err != nil {
		return nil, err
	}
	if err := box.Do(func() (err error) { wan, err = openTap("wan"); return err }); err != nil {
		inet.Close()
		return nil, err
	}
	w := newWire(inet, wan)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.Join(errors.New("lab: closed"), w.close())
	}
	l.wires = append(l.wires, w)
	l.mu.Unlock()
	return w, l.ip(l.Internet.Netns, fmt.Sprintf("link set %s master br0 up", port))
}

// SetDelay sets the delay and the loss (in percent) of each direction of the
// home's uplink; a round trip over it gains twice the delay. Zeroes restore a
// plain link.
func (h *Home) SetDelay(d time.Duration, lossPercent float64) error {
	if d < 0 || lossPercent < 0 || lossPercent > 100 {
		return fmt.Errorf("home %s: bad delay %v or loss %v%%", h.Name, d, lossPercent)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.wire != nil {
		h.wire.set(d, lossPercent)
		h.lab.log.Info("uplink shaped", "home", h.Name, "delay", d, "loss", lossPercent)
		return nil
	}
	l := h.lab
	if l.shaping == ShapeNone {
		if d == 0 && lossPercent == 0 {
			return nil
		}
		return fmt.Errorf("home %s: delay and loss need a lab with shaping, not %v", h.Name, l.shaping)
	}
	ends := []struct{ ns, dev string }{{h.Box.Netns, "wan"}, {l.Internet.Netns, h.port}}
	for _, e := range ends {
		var err error
		if d == 0 && lossPercent == 0 {
			_, err = l.run(l.ctx, "", "tc", "-n", e.ns, "qdisc", "del", "dev", e.dev, "root")
			if err != nil && (strings.Contains(err.Error(), "handle of zero") || strings.Contains(err.Error(), "No such file")) {
				err = nil // no netem there
			}
		} else {
			_, err = l.run(l.ctx, "", "tc", "-n", e.ns, "qdisc", "replace", "dev", e.dev, "root", "netem",
				"delay", fmt.Sprintf("%dus", d.Microseconds()),
				"loss", strconv.FormatFloat(lossPercent, 'f', -1, 64)+"%")
		}
		if err != nil {
			return fmt.Errorf("home %s: shape uplink: %w", h.Name, err)
		}
	}
	l.log.Info("uplink shaped", "home", h.Name, "delay", d, "loss", lossPercent)
	return nil
}

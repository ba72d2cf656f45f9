package lab

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// laneLimit bounds the frames in flight on one direction of a wire, like
// netem's default limit: past it, frames are dropped as a full queue would.
const laneLimit = 1000

// wire is a cable between two TAP devices in different namespaces, with a
// delay and a loss rate on each direction. It stands in for tc netem on
// kernels built without it.
type wire struct {
	a, b   *os.File
	ab, ba lane
	wg     sync.WaitGroup
}

// lane is one direction of a wire.
type lane struct {
	delay atomic.Int64  // nanoseconds
	loss  atomic.Uint64 // math.Float64bits of a percentage
	queue chan frame
}

type frame struct {
	b   []byte
	due time.Time
}

func newWire(a, b *os.File) *wire {
	w := &wire{a: a, b: b}
	w.ab.queue = make(chan frame, laneLimit)
	w.ba.queue = make(chan frame, laneLimit)
	for _, p := range []struct {
		src, dst *os.File
		l        *lane
	}{{a, b, &w.ab}, {b, a, &w.ba}} {
		w.wg.Add(2)
		go func() { defer w.wg.Done(); p.l.pump(p.src, p.dst) }()
		go func() { defer w.wg.Done(); p.l.drain(p.dst) }()
	}
	return w
}

// set changes both directions; frames already in flight keep their delay.
func (w *wire) set(delay time.Duration, lossPercent float64) {
	for _, l := range []*lane{&w.ab, &w.ba} {
		l.delay.Store(int64(delay))
		l.loss.Store(math.Float64bits(lossPercent))
	}
}

// close cuts the cable and waits for its goroutines.
func (w *wire) close() error {
	err := errors.Join(w.a.Close(), w.b.Close())
	w.wg.Wait()
	return err
}

func (l *lane) pump(src, dst *os.File) {
	defer close(l.queue)
	buf := make([]byte, vnetHdrLen+65536)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return // closed, or the device went with its namespace
		}
		if loss := math.Float64frombits(l.loss.Load()); loss > 0 && rand.Float64()*100 < loss {
			continue
		}
		delay := time.Duration(l.delay.Load())
		if delay == 0 && len(l.queue) == 0 {
			// Fast path: a plain cable costs no copy nor allocation.
			dst.Write(buf[:n])
			continue
		}
		f := frame{b: append([]byte(nil), buf[:n]...), due: time.Now().Add(delay)}
		select {
		case l.queue <- f:
		default: // queue full: tail drop
		}
	}
}

// drain writes delayed frames in order, each when it is due.
func (l *lane) drain(dst *os.File) {
	for f := range l.queue {
		if d := time.Until(f.due); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(f.b); errors.Is(err, os.ErrClosed) {
			for range l.queue {
			}
			return
		}
	}
}

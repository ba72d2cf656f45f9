package tunnel

import (
	"errors"
	"reflect"
	"sync"
	"time"
	"unsafe"

	"golang.zx2c4.com/wireguard/device"
)

// A peer without a session keeps what is sent to it in its staged queue
// (128 reads' worth) until a handshake succeeds or, 90 s later, fails. With
// the buffer pool capped, a few offline peers receiving traffic could hold
// every buffer and stall the device. So when the pool stays nearly empty,
// the staged packets of peers without a session are dropped.

const (
	guardInterval = 200 * time.Millisecond
	guardSlack    = 16 // fewer free buffers than this is pressure
)

// poolProbe reads how many buffers of the capped pool are out.
type poolProbe struct {
	lock  *sync.Mutex
	count *uint32
	max   uint32
}

func newPoolProbe(dev *device.Device) (*poolProbe, error) {
	f := reflect.ValueOf(dev).Elem().FieldByName("pool").FieldByName("messageBuffers")
	if !f.IsValid() {
		return nil, errors.New("no messageBuffers pool")
	}
	wp := reflect.ValueOf(*(**device.WaitPool)(unsafe.Pointer(f.UnsafeAddr()))).Elem()
	lock, count, maxf := wp.FieldByName("lock"), wp.FieldByName("count"), wp.FieldByName("max")
	if lock.Type() != reflect.TypeFor[sync.Mutex]() || count.Kind() != reflect.Uint32 || maxf.Kind() != reflect.Uint32 {
		return nil, errors.New("unexpected WaitPool layout")
	}
	return &poolProbe{
		lock:  (*sync.Mutex)(unsafe.Pointer(lock.UnsafeAddr())),
		count: (*uint32)(unsafe.Pointer(count.UnsafeAddr())),
		max:   uint32(maxf.Uint()),
	}, nil
}

func (p *poolProbe) free() int {
	p.lock.Lock()
	defer p.lock.Unlock()
	return int(p.max) - int(*p.count)
}

// guardPools runs until the device stops.
func (t *Tunnel) guardPools(p *poolProbe) {
	tick := time.NewTicker(guardInterval)
	defer tick.Stop()
	strikes := 0
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
		}
		if p.free() >= guardSlack {
			strikes = 0
			continue
		}
		// Under a bulk transfer the pool is often empty for an instant;
		// staged packets hold it for seconds.
		if strikes++; strikes < 2 {
			continue
		}
		strikes = 0
		t.flushSessionless()
	}
}

func (t *Tunnel) flushSessionless() {
	st, err := t.stats()
	if err != nil {
		return
	}
	n := 0
	for _, s := range st {
		if !s.LastHandshake.IsZero() && time.Since(s.LastHandshake) < device.RejectAfterTime {
			continue
		}
		if peer := t.dev.LookupPeer(device.NoisePublicKey(s.PublicKey)); peer != nil {
			peer.FlushStagedPackets()
			n++
		}
	}
	if n > 0 {
		t.log.Debug("buffer pool exhausted: dropped packets waiting for handshakes", "peers", n)
	}
}

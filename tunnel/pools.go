package tunnel

import (
	"errors"
	"net/netip"
	"reflect"
	"unsafe"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// Memory bound.
//
// Every packet in wireguard-go sits in a 64 KiB message buffer (room for a
// GSO super-packet or a GRO-coalesced read) from a pool that is unbounded
// on Linux: under load its queues (1024 batches deep) fill with buffers and
// the process grows to 290-800 MB. Capping the pool is the flow control
// instead: a reader that needs a buffer waits until one is released.
//
// Each reader holds a whole batch of buffers for its lifetime: the TUN
// reader, one receiver per UDP socket (IPv4, IPv6) and the receiver of
// relayed packets (relay.go), 4 in all. With
// stock batches of 128 that is 24 MiB idle in buffers alone; batches of 64
// halve it. 64 still holds a TCP super-packet from the TUN at MTU 1400:
// the TUN hands at most 64 KiB, cut at the MSS (1348 for IPv4 with
// timestamps, 1328 for IPv6) into 49-50 segments (tun/offload_linux.go,
// gsoSplit; an overflow would drop the tail, ErrTooManySegments). UDP GSO
// from applications with segments under 1 KiB would overflow; none on the
// overlay does that. On the UDP side StdNetBind insists on its own batch of
// 128 (conn/bind_std.go: with GRO it reads 2 messages into the last two
// slots and splits them into the first ones), so the Bind hands it the
// device's 64 buffers plus spares and moves what lands in the spares
// (bind.go).
//
// The cap must exceed the readers' batches, 4×64 = 256, with room for a
// batch in flight, or the device deadlocks; and it should leave room for
// the 128 single-packet batches that a peer without a session keeps staged
// (staged.go drops them when the pool stays empty, which a flood towards
// offline peers shows to work with little margin). 384 = 256 + 128,
// 24 MiB of buffers at most; Go's collector lets the heap reach about twice
// the live data, hence the peak RSS below.
//
// Measured on 2 cores, two namespaces over a veth, iperf3 -P 4 -t 10 over
// the overlay (MTU 1400), runs alternated (the spread is the machine's), peak RSS (VmHWM) of the sending / receiving
// process (go test -run TestLoad with HEPTO_TUNNEL_LOAD), measured with
// three readers (the cap was then 352; the relay receiver added one):
//
//	stock (batch 128, unbounded):  1.6-3.0 Gbit/s, 248-330 / 387-482 MiB
//	batch 64, cap 384:             2.8-4.0 Gbit/s,  35 / 59 MiB
//	batch 64, cap 352:             2.5-4.0 Gbit/s,  32-34 / 55-56 MiB
//	batch 64, cap 320:             2.7-3.8 Gbit/s,  30 / 51 MiB
//
// The receiver is bigger because StdNetBind allocates an endpoint per
// packet: that garbage lets the heap grow to its GC goal. A soft memory
// limit (debug.SetMemoryLimit) above ~64 MiB is a harmless backstop now
// that the live heap is bounded.
const (
	batchSize      = 64
	messageBuffers = 384
)

// Tunables, changed only by tests that compare with stock wireguard-go.
var (
	deviceBatch        = batchSize
	bufferCap   uint32 = messageBuffers
)

// batchTUN caps the TUN's batch size, and holds the device back until its
// pools are capped: the device asks for the batch size before it takes its
// first buffer.
type batchTUN struct {
	tun.Device
	ready <-chan struct{}
	q     *quarantine // nil: none
	own   []netip.Prefix
}

// Write hands the packets out of the tunnel to the TUN device (or the
// netstack), less those a quarantine drops.
func (t *batchTUN) Write(bufs [][]byte, offset int) (int, error) {
	if t.q != nil {
		if bufs = t.q.filter(bufs, offset, t.own); len(bufs) == 0 {
			return 0, nil
		}
	}
	return t.Device.Write(bufs, offset)
}

func (t *batchTUN) BatchSize() int {
	<-t.ready
	return min(t.Device.BatchSize(), deviceBatch)
}

// capPools bounds the device's pool of message buffers. wireguard-go has
// the bound (WaitPool.max) but sets it from a constant that is 0, unbounded,
// on Linux; it is set here before any buffer is taken (see batchTUN).
func capPools(dev *device.Device, n uint32) error {
	pool := reflect.ValueOf(dev).Elem().FieldByName("pool")
	if !pool.IsValid() {
		return errors.New("device has no pool field")
	}
	f := pool.FieldByName("messageBuffers")
	if !f.IsValid() || f.Type() != reflect.TypeFor[*device.WaitPool]() {
		return errors.New("device has no messageBuffers pool")
	}
	wp := *(**device.WaitPool)(unsafe.Pointer(f.UnsafeAddr()))
	if wp == nil {
		return errors.New("messageBuffers pool is nil")
	}
	v := reflect.ValueOf(wp).Elem()
	maxf, count := v.FieldByName("max"), v.FieldByName("count")
	if maxf.Kind() != reflect.Uint32 || count.Kind() != reflect.Uint32 {
		return errors.New("unexpected WaitPool layout")
	}
	if count.Uint() != 0 || maxf.Uint() != 0 {
		return errors.New("pool already in use")
	}
	*(*uint32)(unsafe.Pointer(maxf.UnsafeAddr())) = n
	return nil
}

// poolLimit reads the bound back, for tests.
func poolLimit(dev *device.Device) uint32 {
	f := reflect.ValueOf(dev).Elem().FieldByName("pool").FieldByName("messageBuffers")
	wp := *(**device.WaitPool)(unsafe.Pointer(f.UnsafeAddr()))
	return uint32(reflect.ValueOf(wp).Elem().FieldByName("max").Uint())
}

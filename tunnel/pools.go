package tunnel

import (
	"errors"
	"reflect"
	"unsafe"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// Memory bound. (Numbers and reasoning below.)
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

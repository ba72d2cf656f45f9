package tunnel

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"

	"golang.zx2c4.com/wireguard/conn"
)

// fakeBind stands for StdNetBind's batch size and endpoints.
type fakeBind struct{ conn.Bind }

func (fakeBind) BatchSize() int { return conn.IdealBatchSize }

// fakeRecv is a ReceiveFunc returning scripted batches, checking that it
// is always given StdNetBind's full batch of usable buffers.
type fakeRecv struct {
	t       *testing.T
	batches [][][]byte
}

func (f *fakeRecv) recv(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	if len(bufs) != conn.IdealBatchSize {
		f.t.Fatalf("inner receive given %d buffers, want %d", len(bufs), conn.IdealBatchSize)
	}
	for i, b := range bufs {
		if len(b) < 1500 {
			f.t.Fatalf("buffer %d has only %d bytes", i, len(b))
		}
	}
	for _, i := range []int{conn.IdealBatchSize - 2, conn.IdealBatchSize - 1} {
		if len(bufs[i]) < 1<<16-1 {
			f.t.Fatalf("GRO read buffer %d has only %d bytes", i, len(bufs[i]))
		}
	}
	if len(f.batches) == 0 {
		f.t.Fatal("receive called once too often")
	}
	batch := f.batches[0]
	f.batches = f.batches[1:]
	for i, p := range batch {
		sizes[i] = copy(bufs[i], p)
		eps[i] = &conn.StdNetEndpoint{AddrPort: netip.AddrPortFrom(netip.MustParseAddr("198.51.100.9"), uint16(1000+i))}
	}
	return len(batch), nil
}

func wgPacket(n int) []byte {
	b := make([]byte, 32)
	b[0] = 4
	copy(b[4:], fmt.Sprintf("pkt%05d", n))
	return b
}

func TestReceiverDemux(t *testing.T) {
	var got [][]byte
	var from []netip.AddrPort
	b := &sharedBind{inner: fakeBind{}, log: slog.New(slog.DiscardHandler), onPacket: func(p []byte, f netip.AddrPort) {
		got = append(got, append([]byte(nil), p...))
		from = append(from, f)
	}}

	stun := stunRequest(5)
	// Batch 1: 100 packets, STUN at 0 and 70, garbage at 3: 97 WireGuard
	// packets, more than the device's batch of 64.
	var batch1 [][]byte
	var wantWG [][]byte
	for i := range 100 {
		switch i {
		case 0, 70:
			batch1 = append(batch1, stun)
		case 3:
			batch1 = append(batch1, []byte{0xff, 0xff, 0xff, 0xff})
		default:
			p := wgPacket(i)
			batch1 = append(batch1, p)
			wantWG = append(wantWG, p)
		}
	}
	// Batch 2: only STUN, must not reach the device as an empty read.
	batch2 := [][]byte{stun, {0x40, 0, 0, 0}}
	// Batch 3: one WireGuard packet.
	batch3 := [][]byte{wgPacket(1000)}
	wantWG = append(wantWG, batch3[0])

	f := &fakeRecv{t: t, batches: [][][]byte{batch1, batch2, batch3}}
	r := &receiver{bind: b, inner: f.recv}

	const outer = 64
	bufs := make([][]byte, outer)
	for i := range bufs {
		bufs[i] = make([]byte, 1<<16-1)
	}
	sizes := make([]int, outer)
	eps := make([]conn.Endpoint, outer)
	var delivered [][]byte
	for len(f.batches) > 0 || len(r.pending) > 0 {
		n, err := r.receive(bufs, sizes, eps)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 || n > outer {
			t.Fatalf("receive returned %d", n)
		}
		for i := range n {
			delivered = append(delivered, append([]byte(nil), bufs[i][:sizes[i]]...))
			if eps[i] == nil {
				t.Fatalf("packet %d without endpoint", i)
			}
		}
	}
	if len(delivered) != len(wantWG) {
		t.Fatalf("delivered %d WireGuard packets, want %d", len(delivered), len(wantWG))
	}
	for i := range wantWG {
		if !bytes.Equal(delivered[i], wantWG[i]) {
			t.Fatalf("packet %d: got %x, want %x", i, delivered[i], wantWG[i])
		}
	}
	if len(got) != 4 {
		t.Fatalf("OnPacket got %d packets, want 4 (3 STUN, 1 ChannelData)", len(got))
	}
	if from[1] != netip.MustParseAddrPort("198.51.100.9:1070") {
		t.Errorf("second STUN from %v", from[1])
	}
	if b.dropped.Load() != 1 {
		t.Errorf("dropped %d, want 1", b.dropped.Load())
	}
}

func TestParseStats(t *testing.T) {
	text := "private_key=" + fmt.Sprintf("%064x", 1) + "\nlisten_port=51820\n" +
		"public_key=" + fmt.Sprintf("%064x", 2) + "\nendpoint=[2001:db8::1]:51820\nlast_handshake_time_sec=1700000000\n" +
		"last_handshake_time_nsec=5\ntx_bytes=10\nrx_bytes=20\npersistent_keepalive_interval=25\nallowed_ip=10.0.0.1/32\n" +
		"public_key=" + fmt.Sprintf("%064x", 3) + "\nlast_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\n" +
		"errno=0\n"
	st, err := parseStats(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 {
		t.Fatalf("got %d peers", len(st))
	}
	if st[0].PublicKey[31] != 2 || st[0].Endpoint != netip.MustParseAddrPort("[2001:db8::1]:51820") ||
		st[0].LastHandshake.Unix() != 1700000000 || st[0].TxBytes != 10 || st[0].RxBytes != 20 {
		t.Errorf("peer 0: %+v", st[0])
	}
	if st[1].PublicKey[31] != 3 || !st[1].LastHandshake.IsZero() || st[1].Endpoint.IsValid() {
		t.Errorf("peer 1: %+v", st[1])
	}
	if _, err := parseStats("public_key=zz\n"); err == nil {
		t.Error("bad key accepted")
	}
}

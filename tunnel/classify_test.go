package tunnel

import (
	"encoding/binary"
	"testing"
)

func TestClassify(t *testing.T) {
	wg := func(typ byte, n int) []byte { b := make([]byte, n); b[0] = typ; return b }
	transportLikeCookie := wg(4, 32)
	binary.BigEndian.PutUint32(transportLikeCookie[4:], stunMagicCookie)
	stunNoCookie := stunRequest(1)
	stunNoCookie[5] ^= 0xff
	stunShort := stunRequest(1)[:19]
	stunTopBits := stunRequest(1)
	stunTopBits[0] |= 0x80

	for _, tc := range []struct {
		name string
		pkt  []byte
		want packetKind
	}{
		{"empty", nil, kindOther},
		{"short", []byte{1, 0, 0}, kindOther},
		{"initiation", wg(1, 148), kindWireGuard},
		{"response", wg(2, 92), kindWireGuard},
		{"cookie", wg(3, 64), kindWireGuard},
		{"transport", wg(4, 32), kindWireGuard},
		{"transport whose index is the cookie", transportLikeCookie, kindWireGuard},
		{"type 5", wg(5, 32), kindOther},
		{"type 0", wg(0, 32), kindOther},
		{"nonzero reserved", []byte{1, 0, 1, 0, 0, 0}, kindOther},
		{"stun request", stunRequest(1), kindSTUN},
		{"stun success", append([]byte{0x01, 0x01}, stunRequest(1)[2:]...), kindSTUN},
		{"stun without cookie", stunNoCookie, kindOther},
		{"stun too short", stunShort, kindOther},
		{"stun top bits set", stunTopBits, kindOther},
		{"channeldata low", []byte{0x40, 0x00, 0x00, 0x00}, kindChannelData},
		{"channeldata high", []byte{0x7f, 0xff, 0x00, 0x04, 1, 2, 3, 4}, kindChannelData},
		{"channeldata short", []byte{0x40, 0x00, 0x00}, kindOther},
		{"0x80", []byte{0x80, 0, 0, 0}, kindOther},
		{"dtls", []byte{0x16, 0xfe, 0xfd, 0, 0, 0}, kindOther},
	} {
		if got := classify(tc.pkt); got != tc.want {
			t.Errorf("%s: classify(%x) = %v, want %v", tc.name, tc.pkt, got, tc.want)
		}
	}
}

func FuzzClassify(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0})
	f.Add(stunRequest(3))
	f.Add([]byte{0x40, 0x01, 0x00, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		k := classify(b)
		switch k {
		case kindWireGuard:
			if len(b) < 4 || b[0] < 1 || b[0] > 4 || b[1]|b[2]|b[3] != 0 {
				t.Fatalf("%x classified as WireGuard", b)
			}
		case kindSTUN:
			if len(b) < 20 || b[0]&0xc0 != 0 || binary.BigEndian.Uint32(b[4:]) != stunMagicCookie {
				t.Fatalf("%x classified as STUN", b)
			}
		case kindChannelData:
			if len(b) < 4 || b[0] < 0x40 || b[0] > 0x7f {
				t.Fatalf("%x classified as ChannelData", b)
			}
		case kindOther:
			if len(b) >= 4 && b[0] >= 1 && b[0] <= 4 && b[1]|b[2]|b[3] == 0 {
				t.Fatalf("WireGuard-shaped %x not recognised", b)
			}
			if len(b) >= 4 && b[0] >= 0x40 && b[0] <= 0x7f {
				t.Fatalf("ChannelData-shaped %x not recognised", b)
			}
		default:
			t.Fatalf("unknown kind %d", k)
		}
		// Classification looks at the header only.
		if len(b) > 20 && classify(b[:20]) != k && k != kindOther {
			t.Fatalf("kind of %x depends on its payload", b)
		}
	})
}

package tunnel

import "encoding/binary"

// packetKind is what a datagram on the shared UDP socket carries.
type packetKind uint8

const (
	kindOther       packetKind = iota // dropped
	kindWireGuard                     // to the device
	kindSTUN                          // to Options.OnPacket
	kindChannelData                   // TURN ChannelData, to Options.OnPacket
)

func (k packetKind) String() string {
	switch k {
	case kindWireGuard:
		return "wireguard"
	case kindSTUN:
		return "stun"
	case kindChannelData:
		return "channeldata"
	}
	return "other"
}

const stunMagicCookie = 0x2112A442

// wgHandshakeInitiation is WireGuard's first message type.
const wgHandshakeInitiation = 1

// classify tells WireGuard from STUN and TURN ChannelData. WireGuard is tested
// first: its message type (1..4) is a little-endian uint32, so bytes 1..3 are
// zero, which no real STUN message has (it would mean a zero-length message
// of method 0), while a transport packet's receiver index may equal the STUN
// cookie by chance.
func classify(b []byte) packetKind {
	if len(b) < 4 {
		return kindOther
	}
	switch {
	case b[0] >= 1 && b[0] <= 4 && b[1] == 0 && b[2] == 0 && b[3] == 0:
		return kindWireGuard
	case b[0]&0xC0 == 0 && len(b) >= 20 && binary.BigEndian.Uint32(b[4:8]) == stunMagicCookie:
		return kindSTUN
	case b[0] >= 0x40 && b[0] <= 0x7F:
		return kindChannelData
	}
	return kindOther
}

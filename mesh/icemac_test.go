package mesh

import (
	"testing"

	"github.com/hepto-net/hepto/control"
	"github.com/hepto-net/hepto/key"
)

// TestICEMAC: a message MACed by a for b checks at b, and nowhere else;
// a change on the way fails it.
func TestICEMAC(t *testing.T) {
	ka, _ := key.NewPrivate()
	kb, _ := key.NewPrivate()
	kc, _ := key.NewPrivate()
	a, b, c := &Mesh{o: Options{PrivateKey: ka}}, &Mesh{o: Options{PrivateKey: kb}}, &Mesh{o: Options{PrivateKey: kc}}
	msg := control.ICEMessage{From: "home-a", Session: 3, Ufrag: "u", Pwd: "p", Candidates: []string{"candidate:1 1 udp 1 192.168.1.2 4000 typ host"}}
	mac, err := a.iceMAC(msg, kb.Public())
	if err != nil {
		t.Fatal(err)
	}
	msg.MAC = mac
	if !b.checkICEMAC(msg, ka.Public()) {
		t.Fatal("b does not accept a's message")
	}
	if c.checkICEMAC(msg, ka.Public()) {
		t.Fatal("c accepts a message MACed for b")
	}
	forged := msg
	forged.Candidates = []string{"candidate:1 1 udp 1 203.0.113.66 4000 typ host"}
	if b.checkICEMAC(forged, ka.Public()) {
		t.Fatal("a changed message passes")
	}
	forged = msg
	forged.MAC = nil
	if b.checkICEMAC(forged, ka.Public()) {
		t.Fatal("a message without MAC passes")
	}
}

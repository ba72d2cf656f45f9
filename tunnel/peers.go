package tunnel

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hepto-net/hepto/key"
)

// SetPeers makes the device's peers exactly peers: new ones are added,
// present ones updated (their allowed IPs replaced), others removed. In TUN
// mode the kernel routes through the interface then match the allowed IPs.
func (t *Tunnel) SetPeers(peers []Peer) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shut {
		return errClosed
	}
	self := t.opts.PrivateKey.Public()
	want := make(map[key.Public]bool, len(peers))
	var b strings.Builder
	for _, p := range peers {
		if p.PublicKey == self {
			t.log.Debug("skipping own key in peer set")
			continue
		}
		if p.PublicKey.IsZero() {
			return fmt.Errorf("tunnel: peer with zero public key")
		}
		if want[p.PublicKey] {
			return fmt.Errorf("tunnel: peer %v listed twice", p.PublicKey)
		}
		want[p.PublicKey] = true
		fmt.Fprintf(&b, "public_key=%s\nreplace_allowed_ips=true\n", p.PublicKey.Hex())
		if p.Endpoint.IsValid() {
			ep := netip.AddrPortFrom(p.Endpoint.Addr().Unmap(), p.Endpoint.Port())
			fmt.Fprintf(&b, "endpoint=%s\n", ep)
		}
		secs := int64(math.Ceil(p.Keepalive.Seconds()))
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", min(max(secs, 0), math.MaxUint16))
		for _, ip := range p.AllowedIPs {
			if !ip.IsValid() {
				return fmt.Errorf("tunnel: peer %v: invalid allowed ip", p.PublicKey)
			}
			fmt.Fprintf(&b, "allowed_ip=%s\n", ip.Masked())
		}
	}
	current, err := t.stats()
	if err != nil {
		return err
	}
	for _, s := range current {
		if !want[s.PublicKey] {
			fmt.Fprintf(&b, "public_key=%s\nremove=true\n", s.PublicKey.Hex())
		}
	}
	if b.Len() > 0 {
		if err := t.dev.IpcSet(b.String()); err != nil {
			return fmt.Errorf("tunnel: set peers: %w", err)
		}
	}
	if t.link != nil {
		if err := t.link.syncRoutes(peers, self); err != nil {
			return fmt.Errorf("tunnel: %w", err)
		}
	}
	return nil
}

// Stats reads each peer's counters from the device.
func (t *Tunnel) Stats() ([]PeerStats, error) {
	return t.stats()
}

func (t *Tunnel) stats() ([]PeerStats, error) {
	text, err := t.dev.IpcGet()
	if err != nil {
		return nil, fmt.Errorf("tunnel: read device: %w", err)
	}
	return parseStats(text)
}

// parseStats reads the peers out of the UAPI "get" text.
func parseStats(text string) ([]PeerStats, error) {
	var (
		out       []PeerStats
		cur       *PeerStats
		sec, nsec int64
	)
	flush := func() {
		if cur != nil && (sec != 0 || nsec != 0) {
			cur.LastHandshake = time.Unix(sec, nsec)
		}
		sec, nsec = 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		if k == "public_key" {
			flush()
			raw, err := hex.DecodeString(v)
			if err != nil || len(raw) != key.Len {
				return nil, fmt.Errorf("tunnel: bad public key %q from device", v)
			}
			out = append(out, PeerStats{PublicKey: key.Public(raw)})
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil {
			continue
		}
		var err error
		switch k {
		case "endpoint":
			cur.Endpoint, err = netip.ParseAddrPort(v)
		case "last_handshake_time_sec":
			sec, err = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, err = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			cur.RxBytes, err = strconv.ParseUint(v, 10, 64)
		case "tx_bytes":
			cur.TxBytes, err = strconv.ParseUint(v, 10, 64)
		}
		if err != nil {
			return nil, fmt.Errorf("tunnel: bad %s from device: %w", k, err)
		}
	}
	flush()
	return out, sc.Err()
}

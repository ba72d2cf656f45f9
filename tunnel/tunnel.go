// Package tunnel is hepto's WireGuard data plane: a wireguard-go device on a
// kernel TUN interface or on a gVisor netstack, whose UDP socket also carries
// the STUN and TURN traffic of NAT traversal.
package tunnel

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/hepto-net/hepto/key"
)

const DefaultName = "hepto0"

// DefaultMTU fits a relayed path (outer IPv6 + WireGuard + TURN ChannelData)
// on a 1492-byte PPPoE uplink.
const DefaultMTU = 1400

type Options struct {
	Name       string // TUN interface name; default DefaultName
	Netstack   bool   // gVisor netstack instead of a kernel TUN: no root needed
	ListenPort uint16 // UDP port of the shared WireGuard socket; 0 = random
	PrivateKey key.Private
	Addresses  []netip.Prefix // this node's overlay addresses, e.g. 10.77.0.2/32 and fdxx::2/128
	MTU        int            // default DefaultMTU
	Logger     *slog.Logger
	// OnPacket receives datagrams on the shared UDP socket that are not
	// WireGuard (STUN: magic cookie 0x2112A442 at bytes 4..8; TURN
	// ChannelData: first byte 0x40..0x7F). It is called from the receive
	// path, possibly from two goroutines at once (IPv4 and IPv6 sockets):
	// it must not block, and pkt is only valid during the call.
	OnPacket func(pkt []byte, from netip.AddrPort)
	// OnHandshake, when set, is told that a WireGuard handshake initiation
	// arrived on the socket (a peer reaching us directly); it must not
	// block.
	OnHandshake func()
}

type Peer struct {
	PublicKey  key.Public
	Endpoint   netip.AddrPort // zero: leave the endpoint as it is (roaming may have learned it)
	AllowedIPs []netip.Prefix
	Keepalive  time.Duration // persistent keepalive; 0 = off
}

type PeerStats struct {
	PublicKey        key.Public
	Endpoint         netip.AddrPort
	LastHandshake    time.Time // zero if never
	RxBytes, TxBytes uint64
}

// Tunnel is one WireGuard device with its interface or netstack.
type Tunnel struct {
	log        *slog.Logger
	opts       Options
	dev        *device.Device
	bind       *sharedBind
	tnet       *netstack.Net // netstack mode
	link       *kernelLink   // TUN mode
	done       chan struct{}
	quarantine quarantine
	mu         sync.Mutex // serialises SetPeers and Close
	shut       bool
	close      sync.Once
}

// New creates the device, sets its addresses, brings it up and listens.
func New(opts Options) (*Tunnel, error) {
	if opts.Name == "" {
		opts.Name = DefaultName
	}
	if opts.MTU == 0 {
		opts.MTU = DefaultMTU
	}
	if opts.MTU < 1280 || opts.MTU > device.MaxContentSize {
		return nil, fmt.Errorf("tunnel: mtu %d out of range", opts.MTU)
	}
	if opts.PrivateKey.IsZero() {
		return nil, errors.New("tunnel: no private key")
	}
	for _, p := range opts.Addresses {
		if !p.IsValid() {
			return nil, fmt.Errorf("tunnel: invalid address %v", p)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tunnel{log: log, opts: opts, done: make(chan struct{})}

	var tdev tun.Device
	var err error
	if opts.Netstack {
		addrs := make([]netip.Addr, len(opts.Addresses))
		for i, p := range opts.Addresses {
			addrs[i] = p.Addr()
		}
		tdev, t.tnet, err = netstack.CreateNetTUN(addrs, nil, opts.MTU)
		if err != nil {
			return nil, fmt.Errorf("tunnel: netstack: %w", err)
		}
	} else {
		tdev, err = tun.CreateTUN(opts.Name, opts.MTU)
		if err != nil {
			return nil, fmt.Errorf("tunnel: create tun %s: %w", opts.Name, err)
		}
		if name, err := tdev.Name(); err == nil {
			t.opts.Name = name
		}
	}

	ready := make(chan struct{})
	t.bind = newBind(opts.OnPacket, log, ready)
	t.bind.onHandshake = opts.OnHandshake
	t.dev = device.NewDevice(&batchTUN{Device: tdev, ready: ready, q: &t.quarantine, own: opts.Addresses}, t.bind, deviceLogger(log))
	var probe *poolProbe
	if bufferCap > 0 {
		if err := capPools(t.dev, bufferCap); err != nil {
			log.Warn("wireguard buffer pool left unbounded", "err", err)
		} else if probe, err = newPoolProbe(t.dev); err != nil {
			log.Warn("wireguard buffer pool not watched", "err", err)
		}
	}
	close(ready)

	fail := func(err error) (*Tunnel, error) {
		t.dev.Close()
		if t.link != nil {
			t.link.remove()
		}
		return nil, err
	}
	if err := t.dev.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=%d\n", opts.PrivateKey.Hex(), opts.ListenPort)); err != nil {
		return fail(fmt.Errorf("tunnel: configure device: %w", err))
	}
	if err := t.dev.Up(); err != nil {
		return fail(fmt.Errorf("tunnel: device up: %w", err))
	}
	if !opts.Netstack {
		t.link, err = setupLink(t.opts.Name, opts.Addresses, log)
		if err != nil {
			return fail(fmt.Errorf("tunnel: %w", err))
		}
	}
	go t.watch()
	if probe != nil {
		go t.guardPools(probe)
	}
	log.Debug("tunnel up", "name", t.opts.Name, "netstack", opts.Netstack, "port", t.ListenPort(),
		"mtu", opts.MTU, "addresses", opts.Addresses)
	return t, nil
}

// watch reports a device that stops on its own (its TUN failed).
func (t *Tunnel) watch() {
	<-t.dev.Wait()
	t.mu.Lock()
	shut := t.shut
	t.mu.Unlock()
	if !shut {
		t.log.Error("wireguard device stopped")
	}
	close(t.done)
}

// Done is closed when the device has stopped, by Close or by a failure.
func (t *Tunnel) Done() <-chan struct{} { return t.done }

// Name is the TUN interface's name, or "" in netstack mode.
func (t *Tunnel) Name() string {
	if t.opts.Netstack {
		return ""
	}
	return t.opts.Name
}

// ListenPort is the port of the shared UDP socket.
func (t *Tunnel) ListenPort() uint16 { return uint16(t.bind.port.Load()) }

// SetListenPort moves the shared UDP socket to another port (0: random);
// the device re-opens its bind.
func (t *Tunnel) SetListenPort(port uint16) error {
	if err := t.dev.IpcSet(fmt.Sprintf("listen_port=%d\n", port)); err != nil {
		return fmt.Errorf("tunnel: set listen port: %w", err)
	}
	return nil
}

// SendRaw sends a datagram that is not WireGuard (STUN, TURN) from the
// shared UDP socket.
func (t *Tunnel) SendRaw(pkt []byte, to netip.AddrPort) error { return t.bind.SendRaw(pkt, to) }

// Close stops the device; in TUN mode the interface and its routes are gone
// when it returns.
func (t *Tunnel) Close() error {
	var err error
	t.close.Do(func() {
		t.mu.Lock()
		t.shut = true
		t.mu.Unlock()
		t.dev.Close()
		if t.link != nil {
			err = t.link.remove()
		}
		select {
		case <-t.done:
		case <-time.After(5 * time.Second):
		}
	})
	return err
}

var errClosed = errors.New("tunnel: closed")

package publish

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"
)

// Limits that bound what a published address may cost the node.
const (
	maxConns     = 4096             // open TCP connections per address and port
	maxFlows     = 1024             // UDP visitors per address and port
	flowIdle     = 2 * time.Minute  // a UDP visitor silent this long is forgotten
	dialTimeout  = 10 * time.Second // to the Service's address
	copyChunk    = 1 << 20          // bytes counted at least every chunk
	udpBufferLen = 64 << 10         // a visitor's datagram, the largest
	replyLen     = 8 << 10          // a target's answer: DNS, games (1024 flows: 8 MB)
)

// target is where a published port leads: the Service's cluster address
// and port (kube-proxy on this node takes it on to an endpoint).
type target struct {
	service string // namespace/name
	addr    netip.AddrPort
	header  bool // send the PROXY protocol v2 header first (TCP)
}

// Counts are a published port's traffic.
type Counts struct {
	Connections uint64 // accepted (TCP) or new visitors (UDP)
	Open        int64  // open now
	BytesIn     uint64 // from visitors
	BytesOut    uint64 // to visitors
}

type counts struct {
	conns, in, out atomic.Uint64
	open           atomic.Int64
}

func (c *counts) snapshot() Counts {
	return Counts{Connections: c.conns.Load(), Open: c.open.Load(), BytesIn: c.in.Load(), BytesOut: c.out.Load()}
}

// forwarder serves one published address and port.
type forwarder interface {
	retarget(target)
	counts() Counts
	close()
}

// tcpForwarder accepts visitors and splices each to the target.
type tcpForwarder struct {
	ln     net.Listener
	target atomic.Pointer[target]
	c      counts
	slots  chan struct{}
	log    *slog.Logger
	wg     sync.WaitGroup
}

func listenTCP(ctx context.Context, at netip.AddrPort, t target, log *slog.Logger) (*tcpForwarder, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", at.String())
	if err != nil {
		return nil, err
	}
	f := &tcpForwarder{ln: ln, slots: make(chan struct{}, maxConns), log: log}
	f.target.Store(&t)
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

func (f *tcpForwarder) retarget(t target) { f.target.Store(&t) }
func (f *tcpForwarder) counts() Counts    { return f.c.snapshot() }

func (f *tcpForwarder) close() {
	f.ln.Close()
	f.wg.Wait()
}

func (f *tcpForwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			f.log.Debug("publish: accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		select {
		case f.slots <- struct{}{}:
		default:
			c.Close() // full: refuse rather than grow
			continue
		}
		f.c.conns.Add(1)
		f.c.open.Add(1)
		go func() {
			defer func() { <-f.slots; f.c.open.Add(-1) }()
			f.serve(c.(*net.TCPConn))
		}()
	}
}

// serve carries one visitor's connection; the open connections stay when
// the listener closes (a Service changed), as kube-proxy's do.
func (f *tcpForwarder) serve(c *net.TCPConn) {
	defer c.Close()
	t := f.target.Load()
	d := net.Dialer{Timeout: dialTimeout}
	uc, err := d.Dial("tcp", t.addr.String())
	if err != nil {
		f.log.Debug("publish: dial", "service", t.service, "err", err)
		return
	}
	up := uc.(*net.TCPConn)
	defer up.Close()
	if t.header {
		h := proxyproto.HeaderProxyFromAddrs(2, c.RemoteAddr(), c.LocalAddr())
		if _, err := h.WriteTo(up); err != nil {
			return
		}
	}
	done := make(chan struct{})
	go func() {
		splice(up, c, &f.c.in)
		close(done)
	}()
	splice(c, up, &f.c.out)
	<-done
}

// splice copies src to dst until src ends (in kernel on Linux), counting
// as it goes, then half-closes dst.
func splice(dst, src *net.TCPConn, n *atomic.Uint64) {
	for {
		k, err := dst.ReadFrom(io.LimitReader(src, copyChunk))
		n.Add(uint64(k))
		if err != nil || k == 0 {
			break
		}
	}
	dst.CloseWrite()
}

// udpForwarder keeps one socket to the target per visitor: replies go
// back to that visitor from the published address.
type udpForwarder struct {
	pc     *net.UDPConn
	target atomic.Pointer[target]
	c      counts
	log    *slog.Logger
	mu     sync.Mutex
	flows  map[netip.AddrPort]*net.UDPConn
	wg     sync.WaitGroup
}

func listenUDP(at netip.AddrPort, t target, log *slog.Logger) (*udpForwarder, error) {
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(at))
	if err != nil {
		return nil, err
	}
	f := &udpForwarder{pc: pc, log: log, flows: map[netip.AddrPort]*net.UDPConn{}}
	f.target.Store(&t)
	f.wg.Add(1)
	go f.read()
	return f, nil
}

func (f *udpForwarder) retarget(t target) { f.target.Store(&t) }
func (f *udpForwarder) counts() Counts    { return f.c.snapshot() }

func (f *udpForwarder) close() {
	f.pc.Close()
	f.mu.Lock()
	for _, up := range f.flows {
		up.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *udpForwarder) read() {
	defer f.wg.Done()
	buf := make([]byte, udpBufferLen)
	for {
		n, from, err := f.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		up := f.flow(from)
		if up == nil {
			continue
		}
		f.c.in.Add(uint64(n))
		up.Write(buf[:n])
	}
}

// flow is the visitor's socket to the target, made on its first datagram.
func (f *udpForwarder) flow(from netip.AddrPort) *net.UDPConn {
	f.mu.Lock()
	up := f.flows[from]
	full := len(f.flows) >= maxFlows
	f.mu.Unlock()
	if up != nil || full {
		return up
	}
	t := f.target.Load()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(t.addr))
	if err != nil {
		f.log.Debug("publish: dial", "service", t.service, "err", err)
		return nil
	}
	f.mu.Lock()
	f.flows[from] = c
	f.mu.Unlock()
	f.c.conns.Add(1)
	f.c.open.Add(1)
	f.wg.Add(1)
	go f.replies(from, c)
	return c
}

// replies carries the target's answers back to the visitor until the flow
// is idle for flowIdle.
func (f *udpForwarder) replies(to netip.AddrPort, up *net.UDPConn) {
	defer f.wg.Done()
	defer func() {
		f.mu.Lock()
		delete(f.flows, to)
		f.mu.Unlock()
		up.Close()
		f.c.open.Add(-1)
	}()
	buf := make([]byte, replyLen)
	for {
		up.SetReadDeadline(time.Now().Add(flowIdle))
		n, err := up.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		f.c.out.Add(uint64(n))
		if _, err := f.pc.WriteToUDPAddrPort(buf[:n], to); errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

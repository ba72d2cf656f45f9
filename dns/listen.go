package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"
)

const (
	// tcpIdle closes a TCP connection that sends no query for this long
	// (RFC 7766 §6.2.3 suggests seconds).
	tcpIdle = 10 * time.Second
	// maxTCPConns bounds open TCP connections; more are closed at once.
	maxTCPConns = 256
)

// ServePacket answers UDP queries on pc until ctx ends (nil) or pc fails.
// It closes pc. Known answers are written by the reading goroutines
// themselves; the others go to the slow path, at most maxSlow at a time.
func (s *Server) ServePacket(ctx context.Context, pc net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	n := max(1, runtime.GOMAXPROCS(0))
	errc := make(chan error, n)
	for range n {
		go func() { errc <- s.readPackets(pc) }()
	}
	var err error
	for range n {
		if e := <-errc; e != nil && err == nil {
			err = e
			pc.Close()
		}
	}
	pc.Close()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *Server) readPackets(pc net.PacketConn) error {
	buf := make([]byte, 0xffff)
	out := make([]byte, 0, 1500)
	key := make([]byte, 0, 264)
	uc, _ := pc.(*net.UDPConn)
	for {
		var (
			n    int
			ap   netip.AddrPort
			addr net.Addr
			err  error
		)
		if uc != nil {
			n, ap, err = uc.ReadFromUDPAddrPort(buf)
		} else {
			n, addr, err = pc.ReadFrom(buf)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		start := time.Now()
		s.m.udp.Inc()
		if resp, ok := s.fast(buf[:n], false, out, key, start); ok {
			writePacket(pc, uc, resp, ap, addr)
			out = resp[:0]
			continue
		}
		select {
		case s.slowSem <- struct{}{}:
		default:
			s.m.dropped.Inc()
			continue
		}
		req := bytes.Clone(buf[:n])
		go func() {
			defer func() { <-s.slowSem }()
			if resp := s.slow(req, false, start); resp != nil {
				writePacket(pc, uc, resp, ap, addr)
			}
		}()
	}
}

func writePacket(pc net.PacketConn, uc *net.UDPConn, b []byte, ap netip.AddrPort, addr net.Addr) {
	if uc != nil {
		uc.WriteToUDPAddrPort(b, ap)
		return
	}
	pc.WriteTo(b, addr)
}

// ServeStream answers queries over TCP (RFC 7766) on ln until ctx ends
// (nil) or ln fails. It closes ln and its connections.
func (s *Server) ServeStream(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		select {
		case s.tcpSem <- struct{}{}:
		default:
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.tcpSem }()
			s.serveConn(ctx, c)
		}()
	}
}

// serveConn answers the queries of one connection, in order.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var hdr [2]byte
	buf := make([]byte, 512)
	out := make([]byte, 2, 1500)
	key := make([]byte, 0, 264)
	for {
		c.SetReadDeadline(time.Now().Add(tcpIdle))
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n > len(buf) {
			buf = make([]byte, n)
		}
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return
		}
		start := time.Now()
		s.m.tcp.Inc()
		resp, ok := s.fast(buf[:n], true, out[2:2], key, start)
		if !ok {
			if resp = s.slow(buf[:n], true, start); resp == nil {
				continue
			}
		}
		// Length and message in one write, so one segment.
		out = append(out[:2], resp...)
		binary.BigEndian.PutUint16(out, uint16(len(resp)))
		c.SetWriteDeadline(time.Now().Add(tcpIdle))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

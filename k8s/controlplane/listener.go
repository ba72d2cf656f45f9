package controlplane

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// multiListener accepts on several sockets at once: kube-apiserver takes
// one listener, and hepto's apiserver listens on loopback and the overlay
// addresses, never on every address.
type multiListener struct {
	ls     []net.Listener
	conns  chan net.Conn
	done   chan struct{}
	failed chan struct{} // closed when a socket fails (not on Close)
	once   sync.Once
	errMu  sync.Mutex
	err    error
}

// listenAll listens on TCP port of every address; the first address's
// listener is the one Addr reports.
func listenAll(addrs []netip.Addr, port int) (*multiListener, error) {
	m := &multiListener{conns: make(chan net.Conn), done: make(chan struct{}), failed: make(chan struct{})}
	for _, a := range addrs {
		l, err := net.Listen("tcp", net.JoinHostPort(a.String(), strconv.Itoa(port)))
		if err != nil {
			m.Close()
			return nil, err
		}
		m.ls = append(m.ls, l)
	}
	for _, l := range m.ls {
		go m.accept(l)
	}
	return m, nil
}

func (m *multiListener) accept(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.fail(err)
			return
		}
		select {
		case m.conns <- c:
		case <-m.done:
			c.Close()
			return
		}
	}
}

func (m *multiListener) fail(err error) {
	select {
	case <-m.done:
		return // closed: not a failure
	default:
	}
	m.errMu.Lock()
	if m.err == nil {
		m.err = err
		close(m.failed)
	}
	m.errMu.Unlock()
	m.Close()
}

// Failed is closed when one of the sockets fails, Err then says why: the
// apiserver would otherwise run on, serving nothing.
func (m *multiListener) Failed() <-chan struct{} { return m.failed }

func (m *multiListener) Err() error {
	m.errMu.Lock()
	defer m.errMu.Unlock()
	return m.err
}

func (m *multiListener) Accept() (net.Conn, error) {
	select {
	case c := <-m.conns:
		return c, nil
	case <-m.done:
		m.errMu.Lock()
		defer m.errMu.Unlock()
		if m.err != nil {
			return nil, m.err
		}
		return nil, net.ErrClosed
	}
}

func (m *multiListener) Close() error {
	m.once.Do(func() {
		close(m.done)
		for _, l := range m.ls {
			l.Close()
		}
	})
	return nil
}

func (m *multiListener) Addr() net.Addr { return m.ls[0].Addr() }

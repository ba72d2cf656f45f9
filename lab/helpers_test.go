package lab_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hepto-net/hepto/lab"
)

// helperArg makes the test binary run a helper instead of tests, so that
// servers run as real processes inside namespaces.
const helperArg = "lab-helper"

func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == helperArg {
		os.Exit(runHelper(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func runHelper(args []string) int {
	switch args[0] {
	case "udpecho":
		return udpEcho(args[1])
	case "crash":
		return crash()
	case "stubborn":
		// Ignores SIGTERM, so only SIGKILL ends it.
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		select {}
	}
	fmt.Fprintln(os.Stderr, "unknown helper", args)
	return 2
}

// crash makes a lab with a process in it, and exits without closing it.
func crash() int {
	l, err := lab.New(context.Background(), lab.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h, err := l.AddPublicHost("vps")
	if err == nil {
		_, err = h.Start(context.Background(), "", "sleep", "3600")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(l.Prefix)
	return 0
}

// udpEcho answers each datagram with the source address it came from.
func udpEcho(addr string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	context.AfterFunc(ctx, func() { c.Close() })
	fmt.Println("listening", c.LocalAddr())
	buf := make([]byte, 1500)
	for {
		_, from, err := c.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Println("bye")
				return 0
			}
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		c.WriteTo([]byte(from.String()), from)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

// startHelper runs a helper on h and waits for its first line of output.
func startHelper(t *testing.T, h *lab.Host, args ...string) (*lab.Proc, string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), h.Name+"-"+args[0]+".log")
	p, err := h.Start(t.Context(), log, exe, append([]string{helperArg}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(log); strings.Contains(string(b), "\n") {
			return p, log
		}
		select {
		case <-p.Done():
			b, _ := os.ReadFile(log)
			t.Fatalf("%s: helper %v exited: %s", h.Name, args, b)
		default:
		}
	}
	t.Fatalf("%s: helper %v not ready", h.Name, args)
	return nil, ""
}

// startEcho runs the UDP echo helper on h, port 7000.
func startEcho(t *testing.T, h *lab.Host) netip.AddrPort {
	t.Helper()
	startHelper(t, h, "udpecho", ":7000")
	return netip.AddrPortFrom(h.IPv4, 7000)
}

// listen opens a UDP socket on h.
func listen(t *testing.T, h *lab.Host, addr string) net.PacketConn {
	t.Helper()
	c, err := h.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// seenFrom asks the echo server what source address c's packets have.
func seenFrom(c net.PacketConn, server netip.AddrPort) (netip.AddrPort, error) {
	buf := make([]byte, 1500)
	for range 5 {
		if _, err := c.WriteTo([]byte("who am i"), net.UDPAddrFromAddrPort(server)); err != nil {
			return netip.AddrPort{}, err
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			if fromAP := from.(*net.UDPAddr).AddrPort(); fromAP.Addr().Unmap() != server.Addr() {
				continue
			}
			return netip.ParseAddrPort(string(buf[:n]))
		}
	}
	return netip.AddrPort{}, fmt.Errorf("no answer from %s", server)
}

// received reports whether a datagram reaches c within d.
func received(c net.PacketConn, d time.Duration) (string, bool) {
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(d))
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		return "", false
	}
	return string(buf[:n]), true
}

// minRTT pings n times and returns the shortest round trip.
func minRTT(t *testing.T, from *lab.Host, to netip.Addr, n int) time.Duration {
	t.Helper()
	best := time.Duration(-1)
	var errs []error
	for range n {
		rtt, err := from.Ping(t.Context(), to)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if best < 0 || rtt < best {
			best = rtt
		}
	}
	if best < 0 {
		t.Fatalf("%s cannot ping %s: %v", from.Name, to, errors.Join(errs...))
	}
	return best
}

package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/hepto-net/hepto/key"
)

// The integration tests run each tunnel in a child process started under
// "ip netns exec": a process, unlike a goroutine, stays in its namespace.
// The child is this test binary running TestHelperProcess; it takes JSON
// requests on stdin and answers, and reports events, on stdout.

const helperEnv = "HEPTO_TUNNEL_HELPER"

type request struct {
	Op        string       `json:"op"`
	Netstack  bool         `json:"netstack,omitempty"`
	Port      uint16       `json:"port,omitempty"`
	Key       key.Private  `json:"key,omitzero"`
	Addresses []string     `json:"addresses,omitempty"`
	Peers     []helperPeer `json:"peers,omitempty"`
	Addr      string       `json:"addr,omitempty"`
	Data      []byte       `json:"data,omitempty"`
}

type helperPeer struct {
	Key       key.Public `json:"key"`
	Endpoint  string     `json:"endpoint,omitempty"`
	Allowed   []string   `json:"allowed"`
	Keepalive int        `json:"keepalive,omitempty"`
}

type response struct {
	Event string      `json:"event,omitempty"` // "packet" for OnPacket
	Err   string      `json:"err,omitempty"`
	Port  uint16      `json:"port,omitempty"`
	PID   int         `json:"pid,omitempty"`
	Data  []byte      `json:"data,omitempty"`
	From  string      `json:"from,omitempty"`
	RTT   int64       `json:"rtt,omitempty"`
	Stats []PeerStats `json:"stats,omitempty"`
}

func TestHelperProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process for the namespace tests")
	}
	if v := os.Getenv("HEPTO_TUNNEL_STOCK"); v == "1" {
		deviceBatch, bufferCap = 128, 0
	}
	if n, err := strconv.Atoi(os.Getenv("HEPTO_TUNNEL_CAP")); err == nil {
		bufferCap = uint32(n)
	}
	if n, err := strconv.Atoi(os.Getenv("HEPTO_TUNNEL_BATCH")); err == nil {
		deviceBatch = n
	}
	os.Exit(runHelper(os.Stdin, os.Stdout))
}

func runHelper(in io.Reader, out io.Writer) int {
	var (
		mu  sync.Mutex
		enc = json.NewEncoder(out)
		tun *Tunnel
		udp *net.UDPConn
		ctx = context.Background()
	)
	send := func(r response) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(r)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			send(response{Err: err.Error()})
			continue
		}
		var resp response
		err := func() error {
			switch req.Op {
			case "new":
				opts := Options{Netstack: req.Netstack, ListenPort: req.Port, PrivateKey: req.Key, Logger: logger,
					OnPacket: func(pkt []byte, from netip.AddrPort) {
						send(response{Event: "packet", Data: append([]byte(nil), pkt...), From: from.String()})
					}}
				for _, a := range req.Addresses {
					opts.Addresses = append(opts.Addresses, netip.MustParsePrefix(a))
				}
				var err error
				tun, err = New(opts)
				if err != nil {
					return err
				}
				resp.Port, resp.PID = tun.ListenPort(), os.Getpid()
			case "peers":
				var peers []Peer
				for _, p := range req.Peers {
					peer := Peer{PublicKey: p.Key, Keepalive: time.Duration(p.Keepalive) * time.Second}
					if p.Endpoint != "" {
						peer.Endpoint = netip.MustParseAddrPort(p.Endpoint)
					}
					for _, a := range p.Allowed {
						peer.AllowedIPs = append(peer.AllowedIPs, netip.MustParsePrefix(a))
					}
					peers = append(peers, peer)
				}
				return tun.SetPeers(peers)
			case "stats":
				var err error
				resp.Stats, err = tun.Stats()
				return err
			case "setport":
				if err := tun.SetListenPort(req.Port); err != nil {
					return err
				}
				resp.Port = tun.ListenPort()
			case "sendraw":
				return tun.SendRaw(req.Data, netip.MustParseAddrPort(req.Addr))
			case "ping":
				c, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				rtt, err := tun.Ping(c, netip.MustParseAddr(req.Addr))
				resp.RTT = int64(rtt)
				return err
			case "serve":
				// HTTP on an overlay address, through Listen.
				ln, err := tun.Listen("tcp", netip.MustParseAddrPort(req.Addr))
				if err != nil {
					return err
				}
				go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					fmt.Fprintf(w, "hello from %s", req.Addr)
				}))
			case "socks":
				ln, err := net.Listen("tcp", req.Addr)
				if err != nil {
					return err
				}
				go tun.ServeSOCKS5Listener(ctx, ln)
			case "get":
				// GET through DialContext, or through a SOCKS5 proxy when Data names one.
				dial := tun.DialContext
				if len(req.Data) > 0 {
					d, err := proxy.SOCKS5("tcp", string(req.Data), nil, proxy.Direct)
					if err != nil {
						return err
					}
					dial = d.(proxy.ContextDialer).DialContext
				}
				c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dial}}
				r, err := c.Get("http://" + req.Addr + "/")
				if err != nil {
					return err
				}
				defer r.Body.Close()
				resp.Data, err = io.ReadAll(r.Body)
				return err
			case "udplisten":
				var err error
				udp, err = net.ListenUDP("udp", nil)
				if err != nil {
					return err
				}
				resp.Port = uint16(udp.LocalAddr().(*net.UDPAddr).Port)
			case "udpsend":
				_, err := udp.WriteToUDPAddrPort(req.Data, netip.MustParseAddrPort(req.Addr))
				return err
			case "udprecv":
				buf := make([]byte, 2048)
				udp.SetReadDeadline(time.Now().Add(3 * time.Second))
				n, from, err := udp.ReadFromUDPAddrPort(buf)
				if err != nil {
					return err
				}
				resp.Data, resp.From = buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()).String()
			case "close":
				return tun.Close()
			default:
				return fmt.Errorf("unknown op %q", req.Op)
			}
			return nil
		}()
		if err != nil {
			resp.Err = err.Error()
		}
		send(resp)
	}
	return 0
}

// helper is the test's handle on a child process.
type helper struct {
	t      *testing.T
	ns     string
	pid    int
	in     io.WriteCloser
	resps  chan response
	events chan response
	mu     sync.Mutex
}

func startHelper(t *testing.T, ns string, env ...string) *helper {
	t.Helper()
	cmd := execCommand("ip", "netns", "exec", ns, os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(append(os.Environ(), helperEnv+"=1"), env...)
	cmd.Stderr = &testWriter{t: t, prefix: ns + ": "}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{t: t, ns: ns, pid: cmd.Process.Pid, in: in, resps: make(chan response, 16), events: make(chan response, 256)}
	t.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	go func() {
		dec := json.NewDecoder(out)
		for {
			var r response
			if err := dec.Decode(&r); err != nil {
				close(h.resps)
				return
			}
			if r.Event != "" {
				select {
				case h.events <- r:
				default:
				}
				continue
			}
			h.resps <- r
		}
	}()
	return h
}

func (h *helper) try(req request) (response, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, _ := json.Marshal(req)
	if _, err := h.in.Write(append(b, '\n')); err != nil {
		return response{}, fmt.Errorf("%s: write %s: %w", h.ns, req.Op, err)
	}
	select {
	case r, ok := <-h.resps:
		if !ok {
			return response{}, fmt.Errorf("%s: helper exited during %s", h.ns, req.Op)
		}
		if r.Err != "" {
			return r, fmt.Errorf("%s: %s: %s", h.ns, req.Op, r.Err)
		}
		return r, nil
	case <-time.After(20 * time.Second):
		return response{}, fmt.Errorf("%s: %s timed out", h.ns, req.Op)
	}
}

func (h *helper) do(req request) response {
	h.t.Helper()
	r, err := h.try(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// event waits for an OnPacket report.
func (h *helper) event(timeout time.Duration) (response, bool) {
	select {
	case r := <-h.events:
		return r, true
	case <-time.After(timeout):
		return response{}, false
	}
}

type testWriter struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.t.Log(w.prefix + string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func itoa(n int) string { return strconv.Itoa(n) }

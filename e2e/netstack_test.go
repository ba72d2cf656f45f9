package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"github.com/hepto-net/hepto/lab"
)

// A member in netstack mode, without TUN and without root, reaches other
// nodes' overlay addresses through its SOCKS5 proxy, and they reach it.
func TestNetstackMember(t *testing.T) {
	w := newWorld(t)
	a := w.anchor("anchor", w.publicHost("anchor"))
	ha := w.home("home-a", lab.HomeOptions{NAT: lab.EIM})
	hb := w.home("home-b", lab.HomeOptions{NAT: lab.EIM})
	na := w.join("home-a", ha.Machines[0], a)

	// home-b runs as nobody, in netstack mode, its state where nobody may write.
	nb := w.node("home-b", hb.Machines[0])
	dir, err := os.MkdirTemp("", "hepto-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	nb.State = filepath.Join(dir, "state")
	if err := errors.Join(os.Chmod(dir, 0o755), os.Mkdir(nb.State, 0o700), os.Chown(nb.State, 65534, 65534)); err != nil {
		t.Fatal(err)
	}
	if err := nb.StartAs([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"},
		"--userspace-networking", "--socks5", "127.0.0.1:1080", "--join", a.token("home-b")); err != nil {
		t.Fatal(err)
	}
	nb.waitSocket()
	if out, err := hb.Machines[0].Run(w.ctx, "ip", "link", "show", "hepto0"); err == nil {
		t.Fatalf("netstack mode made a TUN device: %s", out)
	}
	stB := nb.waitConnected(60*time.Second, "anchor", "home-a")
	stA := na.waitConnected(60*time.Second, "anchor", "home-b")

	// Through the proxy, fetch each node's membership from its control port.
	socks, err := proxy.SOCKS5("tcp", "127.0.0.1:1080", nil, hostDialer{hb.Machines[0]})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, n, addr string) (net.Conn, error) {
			return socks.(proxy.ContextDialer).DialContext(ctx, n, addr)
		},
	}}
	ast, _, _ := a.status()
	for _, target := range []string{ast.OverlayIPs[0], stA.OverlayIPs[0], "[" + stA.OverlayIPs[1] + "]"} {
		var body string
		eventually(t, 30*time.Second, func() error {
			resp, err := client.Get(fmt.Sprintf("http://%s:51821/v1/membership?have=0", target))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s: %s", target, resp.Status)
			}
			return nil
		})
		if !strings.Contains(body, `"kind":"node"`) {
			t.Fatalf("%s answered %q", target, body)
		}
	}
	// And the kernel side reaches the netstack node.
	if err := na.ping(stB.OverlayIPs[0], 20*time.Second); err != nil {
		t.Fatalf("home-a → netstack home-b: %v", err)
	}
}

// hostDialer dials from inside a lab host's namespace.
type hostDialer struct{ h *lab.Host }

func (d hostDialer) Dial(network, addr string) (net.Conn, error) {
	return d.h.DialContext(context.Background(), network, addr)
}

func (d hostDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return d.h.DialContext(ctx, network, addr)
}

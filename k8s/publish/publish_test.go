package publish

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPublic(t *testing.T) {
	for s, want := range map[string]bool{
		"203.0.113.1": true, "2001:db8::1": true, "198.51.100.7": true, "8.8.8.8": true,
		"10.1.2.3": false, "192.168.1.2": false, "100.64.1.1": false, "127.0.0.1": false,
		"fd00::1": false, "fe80::1": false, "::1": false, "64:ff9b::1.2.3.4": false,
	} {
		if got := Public(netip.MustParseAddr(s)); got != want {
			t.Errorf("Public(%s) = %v, want %v", s, got, want)
		}
	}
}

// TestWanted: the node serves the status's addresses that are its own,
// each port of the Service; Proxy entries lead to the cluster address of
// the same family when there is one.
func TestWanted(t *testing.T) {
	proxy, vip := corev1.LoadBalancerIPModeProxy, corev1.LoadBalancerIPModeVIP
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "mail", Name: "smtp", Annotations: map[string]string{ProxyProtocol: "v2"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, ClusterIP: "10.96.0.25", ClusterIPs: []string{"10.96.0.25"},
			Ports: []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: 25}, {Protocol: corev1.ProtocolUDP, Port: 53}}},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
			{IP: "203.0.113.1", IPMode: &vip}, {IP: "2001:db8::1", IPMode: &proxy}, {IP: "203.0.113.2", IPMode: &proxy},
		}}},
	}
	got := Wanted([]*corev1.Service{s}, []netip.Addr{netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8::1")})
	var keys []string
	for k, e := range got {
		keys = append(keys, k+" "+e.Mode+" "+e.Target.String())
		if k == "2001:db8::1 25/tcp" && !e.ProxyProtocol || k == "2001:db8::1 53/udp" && e.ProxyProtocol {
			t.Errorf("%s: proxy protocol %v, want for TCP only", k, e.ProxyProtocol)
		}
	}
	slices.Sort(keys)
	want := []string{
		"2001:db8::1 25/tcp proxy 10.96.0.25:25",
		"2001:db8::1 53/udp proxy 10.96.0.25:53",
		"203.0.113.1 25/tcp vip invalid AddrPort",
		"203.0.113.1 53/udp vip invalid AddrPort",
	}
	if !slices.Equal(keys, want) {
		t.Errorf("wanted %q, want %q", keys, want)
	}
}

// TestForwarders carries TCP, with and without the PROXY protocol header,
// and UDP, through real sockets on loopback, and counts them.
func TestForwarders(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	// A TCP server that answers with the address it sees the client at.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serve := func(l net.Listener) {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, c.RemoteAddr().String()+" "+line)
			}()
		}
	}
	// The header is optional here: the same server takes both.
	go serve(&proxyproto.Listener{Listener: ln, ConnPolicy: func(proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
		return proxyproto.USE, nil
	}})
	dst := netip.MustParseAddrPort(ln.Addr().String())
	for _, header := range []bool{false, true} {
		f, err := listenTCP(context.Background(), netip.MustParseAddrPort("127.0.0.1:0"), target{addr: dst, header: header}, log)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", f.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "hello\n")
		reply, _ := io.ReadAll(c)
		c.Close()
		seen, rest, _ := strings.Cut(strings.TrimSpace(string(reply)), " ")
		if rest != "hello" {
			t.Errorf("header %v: reply %q", header, reply)
		}
		// With the header, the server sees the visitor's own address.
		if (seen == c.LocalAddr().String()) != header {
			t.Errorf("header %v: the server saw %s, the visitor is %s", header, seen, c.LocalAddr())
		}
		f.close()
		// The connection's last bytes are counted as its copies end.
		for end := time.Now().Add(2 * time.Second); f.counts().Open != 0 && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		if n := f.counts(); n.Connections != 1 || n.BytesIn != 6 || n.BytesOut != uint64(len(reply)) || n.Open != 0 {
			t.Errorf("header %v: counts %+v, want 1 connection, 6 bytes in, %d out, none open", header, n, len(reply))
		}
	}

	// UDP: an echo server; two visitors, each answered on its own.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	u, err := listenUDP(netip.MustParseAddrPort("127.0.0.1:0"), target{addr: netip.MustParseAddrPort(pc.LocalAddr().String())}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	for _, word := range []string{"one", "two"} {
		c, err := net.Dial("udp", u.pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte(word))
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != "echo "+word {
			t.Errorf("UDP %s: %q %v", word, buf[:n], err)
		}
		c.Close()
	}
	if n := u.counts(); n.Connections != 2 || n.BytesIn != 6 || n.BytesOut != 16 || n.Open != 2 {
		t.Errorf("UDP counts %+v, want 2 visitors, 6 bytes in, 16 out, 2 open", n)
	}
}

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hepto-net/hepto/lab"
	"github.com/hepto-net/hepto/localapi"
)

// resolverEnv makes the test binary a tiny resolver of the lab's Internet,
// for the DNS test: see runResolver.
const resolverEnv = "HEPTO_E2E_RESOLVER"

func init() {
	if os.Getenv(resolverEnv) != "" {
		os.Exit(runResolver())
	}
}

// wwwTTL is short so that the stale answers show within the test.
const wwwTTL = 4

// runResolver answers on port 53, UDP and TCP, until SIGTERM:
// www.example. (A, AAAA), big.example. (40 TXT records, more than UDP
// carries), NXDOMAIN for the rest. Each query goes to stdout, one a line.
func runResolver() int {
	var mu sync.Mutex
	dns.HandleFunc(".", func(w dns.ResponseWriter, q *dns.Msg) {
		mu.Lock()
		fmt.Printf("query %s %s %s\n", w.RemoteAddr().Network(), strings.ToLower(q.Question[0].Name), dns.TypeToString[q.Question[0].Qtype])
		mu.Unlock()
		r := new(dns.Msg)
		r.SetReply(q)
		var rrs []string
		switch strings.ToLower(q.Question[0].Name) {
		case "www.example.":
			rrs = []string{fmt.Sprintf("www.example. %d IN A 192.0.2.80", wwwTTL), fmt.Sprintf("www.example. %d IN AAAA 2001:db8:80::80", wwwTTL)}
		case "big.example.":
			for i := range 40 {
				rrs = append(rrs, fmt.Sprintf("big.example. 300 IN TXT \"record %02d %s\"", i, strings.Repeat("x", 90)))
			}
		}
		for _, s := range rrs {
			if rr, _ := dns.NewRR(s); rr.Header().Rrtype == q.Question[0].Qtype {
				r.Answer = append(r.Answer, rr)
			}
		}
		if rrs == nil {
			r.Rcode = dns.RcodeNameError
			soa, _ := dns.NewRR("example. 300 IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60")
			r.Ns = []dns.RR{soa}
		}
		size := dns.MinMsgSize
		if o := q.IsEdns0(); o != nil {
			r.SetEdns0(4096, false)
			size = int(o.UDPSize())
		}
		if w.RemoteAddr().Network() == "udp" {
			r.Truncate(size)
		}
		w.WriteMsg(r)
	})
	errc := make(chan error, 2)
	for _, n := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: ":53", Net: n}
		go func() { errc <- srv.ListenAndServe() }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "resolver:", err)
		return 1
	case <-sig:
		return 0
	}
}

// resolver runs runResolver on h; its stop ends it.
type resolver struct {
	host *lab.Host
	cmd  *exec.Cmd
	log  string
}

func startResolver(t *testing.T, ctx context.Context, h *lab.Host) *resolver {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r := &resolver{host: h, log: filepath.Join(t.TempDir(), "resolver.log")}
	f, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	r.cmd = h.Command(ctx, exe, "-test.run=^$")
	r.cmd.Env = append(os.Environ(), resolverEnv+"=1")
	r.cmd.Stdout, r.cmd.Stderr = f, f
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	// Wait for it to answer.
	eventually(t, 10*time.Second, func() error {
		c := &dns.Client{Timeout: 500 * time.Millisecond}
		var err error
		h.Do(func() error {
			m := new(dns.Msg)
			m.SetQuestion("ready.example.", dns.TypeA)
			_, _, err = c.Exchange(m, net.JoinHostPort(h.IPv4.String(), "53"))
			return nil
		})
		return err
	})
	return r
}

func (r *resolver) stop() {
	if r.cmd.ProcessState != nil {
		return
	}
	syscall.Kill(-r.cmd.Process.Pid, syscall.SIGTERM)
	r.cmd.Wait()
}

// queries counts the queries the resolver got for name and type.
func (r *resolver) queries(name, qtype string) int {
	b, _ := os.ReadFile(r.log)
	return strings.Count(string(b), " "+name+" "+qtype+"\n")
}

// dig runs dig on h; its output and error.
func (w *world) dig(h *lab.Host, args ...string) (string, error) {
	return h.Run(w.ctx, "dig", append([]string{"+time=2", "+tries=1"}, args...)...)
}

// Every node answers DNS on its overlay addresses: node names from the
// membership, PTR records, NXDOMAIN with a SOA, and other names forwarded
// to its own resolvers, cached, and served stale when they fail.
func TestDNS(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Fatal("dig is missing: apt-get install bind9-dnsutils (make deps)")
	}
	w := newWorld(t)
	res := startResolver(t, w.ctx, w.publicHost("resolver"))
	a := w.anchor("anchor", w.publicHost("anchor"))
	ha := w.home("home-a", lab.HomeOptions{NAT: lab.EIM})
	hb := w.home("home-b", lab.HomeOptions{NAT: lab.EIM})

	// home-a's resolv.conf names the lab's resolver, as a home box's
	// DHCP would name the ISP's: `ip netns exec` mounts it over
	// /etc/resolv.conf.
	nsDir := filepath.Join("/etc/netns", ha.Machines[0].Netns)
	if err := os.MkdirAll(nsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(nsDir) })
	if err := os.WriteFile(filepath.Join(nsDir, "resolv.conf"), []byte("nameserver "+res.host.IPv4.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	na := w.join("home-a", ha.Machines[0], a)
	nb := w.join("home-b", hb.Machines[0], a)
	stA := na.waitConnected(60*time.Second, "anchor")
	stB := nb.waitConnected(60*time.Second, "anchor")
	b := hb.Machines[0]
	server := "@" + stA.OverlayIPs[0]

	// From home-b, through the overlay: home-a's own name, both
	// families, and home-b's, which home-a learnt when home-b joined.
	digShort := func(args ...string) string {
		t.Helper()
		var out string
		eventually(t, 60*time.Second, func() error {
			var err error
			out, err = w.dig(b, append([]string{server, "+short"}, args...)...)
			if err == nil && strings.TrimSpace(out) == "" {
				err = fmt.Errorf("dig %s: empty answer", args)
			}
			return err
		})
		return strings.TrimSpace(out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"home-a.demo.internal", "A"}, stA.OverlayIPs[0]},
		{[]string{"home-a.demo.internal", "AAAA"}, stA.OverlayIPs[1]},
		{[]string{"HOME-B.demo.internal", "AAAA"}, stB.OverlayIPs[1]},
		{[]string{"anchor.demo.internal", "A"}, mustStatus(t, a).OverlayIPs[0]},
		{[]string{"-x", stA.OverlayIPs[0]}, "home-a.demo.internal."},
		{[]string{"-x", stB.OverlayIPs[1]}, "home-b.demo.internal."},
	} {
		if got := digShort(tc.args...); got != tc.want {
			t.Fatalf("dig %s %v: %q, want %q", server, tc.args, got, tc.want)
		}
	}
	// The single queries below must not straddle the moment the pair
	// leaves the anchor's relay for its own path, when a reply in flight
	// can be lost.
	nb.waitPath(60*time.Second, "home-a", "direct")
	na.waitPath(60*time.Second, "home-b", "direct")

	// Over IPv6 too, and on home-b's own loopback.
	if out, err := w.dig(b, "@"+stA.OverlayIPs[1], "+short", "home-b.demo.internal", "A"); err != nil || strings.TrimSpace(out) != stB.OverlayIPs[0] {
		t.Fatalf("over IPv6: %q %v", out, err)
	}
	if out, err := w.dig(b, "@127.0.0.1", "+short", "home-a.demo.internal", "A"); err != nil || strings.TrimSpace(out) != stA.OverlayIPs[0] {
		t.Fatalf("on loopback: %q %v", out, err)
	}

	// A node in netstack mode answers on its overlay addresses too,
	// through the netstack, over UDP and TCP.
	hc := w.home("home-c", lab.HomeOptions{NAT: lab.EIM})
	nc := w.join("home-c", hc.Machines[0], a, "--userspace-networking", "--socks5", "127.0.0.1:1080")
	stC := nc.waitConnected(60*time.Second, "anchor")
	for _, transport := range []string{"+notcp", "+tcp"} {
		var out string
		eventually(t, 60*time.Second, func() error {
			var err error
			out, err = w.dig(b, "@"+stC.OverlayIPs[0], transport, "+short", "home-a.demo.internal", "A")
			if err == nil && strings.TrimSpace(out) != stA.OverlayIPs[0] {
				err = fmt.Errorf("netstack node answered %q", out)
			}
			return err
		})
	}

	// An unknown node: NXDOMAIN, authoritative, with the zone's SOA.
	out, err := w.dig(b, server, "nobody.demo.internal", "A")
	if err != nil || !strings.Contains(out, "status: NXDOMAIN") || !regexp.MustCompile(`flags: qr aa`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^demo\.internal\.\s+\d+\s+IN\s+SOA\s+home-a\.demo\.internal\. `).MatchString(out) {
		t.Fatalf("unknown node: %v\n%s", err, out)
	}

	// A forwarded name, through home-a's resolver; the second time from
	// home-a's cache.
	for i := range 2 {
		if got := digShort("www.example", "A"); got != "192.0.2.80" {
			t.Fatalf("forwarded name: %q", got)
		}
		if n := res.queries("www.example.", "A"); n != 1 {
			t.Fatalf("after %d queries, the resolver saw %d", i+1, n)
		}
	}

	// home-a's metrics say so too.
	metrics := w.fetch(ha.Machines[0], "http://127.0.0.1:9469/metrics")
	for _, want := range []string{`hepto_dns_cache_hits_total [1-9]`, `hepto_dns_cache_misses_total [1-9]`,
		`hepto_dns_queries_total\{proto="udp"\} [1-9]`, `hepto_dns_request_duration_seconds_count\{answer="local"\} [1-9]`} {
		if !regexp.MustCompile(`(?m)^` + want).MatchString(metrics) {
			t.Fatalf("home-a's metrics lack %s:\n%s", want, metrics)
		}
	}

	// A big answer: truncated over UDP, whole over TCP.
	out, err = w.dig(b, server, "+ignore", "big.example", "TXT")
	if err != nil || !regexp.MustCompile(`flags: qr tc rd ra`).MatchString(out) {
		t.Fatalf("big answer over UDP: not truncated: %v\n%s", err, out)
	}
	out, err = w.dig(b, server, "big.example", "TXT")
	if err != nil || !strings.Contains(out, "Truncated, retrying in TCP mode") || strings.Count(out, "\tTXT\t\"record ") != 40 {
		t.Fatalf("big answer: no TCP retry, or not whole: %v\n%s", err, out)
	}

	// The resolver stops: once the answer expires, it is served stale,
	// for a while.
	time.Sleep((wwwTTL + 1) * time.Second)
	res.stop()
	for i := range 3 {
		out, err := w.dig(b, server, "+noall", "+answer", "www.example", "A")
		if err != nil || !regexp.MustCompile(`(?m)^www\.example\.\s+30\s+IN\s+A\s+192\.0\.2\.80$`).MatchString(out) {
			t.Fatalf("stale answer %d: %v\n%s", i, err, out)
		}
		time.Sleep(2 * time.Second)
	}
}

// fetch GETs url from inside h's namespace.
func (w *world) fetch(h *lab.Host, url string) string {
	w.t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: h.DialContext}}
	resp, err := c.Get(url)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		w.t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return string(b)
}

func mustStatus(t *testing.T, n *node) localapi.Status {
	t.Helper()
	st, _, err := n.status()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Command web is the program of the lab's container image (tests, demo): a static HTTP server that
// answers with its host name (the pod's name), and a client.
//
//	web serve [ADDR]      serve on ADDR (default :8080); GET /ready answers 503 once /unready was asked,
//	                      GET /whoami the client's address as the server sees it (X-Forwarded-For's first)
//	web serve-proxy ADDR  the same, behind the PROXY protocol (v1 or v2, required): /whoami is the visitor's
//	web udp-echo ADDR     answer each datagram with "HOST CLIENT-IP WORDS"
//	web udp ADDR WORDS    send WORDS in a datagram to ADDR, print the answer
//	web scan IP           print the TCP ports of IP that accept a connection, one a line
//	web load URL SECONDS CONC [new]  GET URL from CONC clients for SECONDS (keep-alive, or a new
//	                      connection per request); print "RPS P50 P99 ERRORS" (seconds)
//	web download URL      GET URL, discard the body; print "BYTES SECONDS"
//	web hold ADDR N SECONDS  open N TCP connections to ADDR, hold them SECONDS; print how many opened
//	web dns-serve ADDR NAME=IP...  an authoritative DNS server (UDP and TCP) for NAME's A or AAAA
//	                      records (the lab's Internet names); other names: NXDOMAIN
//	GET /bytes?n=N        (serve) N zero bytes
//	web get URL [N]       print the body of URL, N times (default 1), each on a new connection;
//	                      https trusts the pod's service-account CA and token
//	web echo WORDS...     print WORDS
//	web cat FILE          print FILE
//	web write FILE WORDS  write WORDS to FILE, made if missing
//	web disk DIR MIB      write a file of MIB MiB in DIR (1 MiB writes, then fsync), drop it from the
//	                      page cache, read it back; print "WRITE-MB/S READ-MB/S"
//	web dig TYPE NAME     ask the resolver of /etc/resolv.conf (no search list); print the rcode,
//	                      then the answer section, one record a line
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/pires/go-proxyproto"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount/"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: web serve [ADDR] | get URL [N] | echo WORDS... | cat FILE | write FILE WORDS... | dig TYPE NAME")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		addr := ":8080"
		if len(os.Args) > 2 {
			addr = os.Args[2]
		}
		err = serve(addr, false)
	case "serve-proxy":
		err = serve(arg(2), true)
	case "udp-echo":
		err = udpEcho(arg(2))
	case "udp":
		err = udpAsk(arg(2), strings.Join(os.Args[3:], " "))
	case "scan":
		err = scan(arg(2))
	case "load":
		err = load(os.Args[2:])
	case "dns-serve":
		err = dnsServe(arg(2), os.Args[3:])
	case "download":
		err = download(arg(2))
	case "hold":
		err = hold(os.Args[2:])
	case "get":
		n := 1
		if len(os.Args) > 3 {
			if n, err = strconv.Atoi(os.Args[3]); err != nil {
				break
			}
		}
		for i := 0; i < n && err == nil; i++ {
			err = get(arg(2))
		}
	case "echo":
		fmt.Println(strings.Join(os.Args[2:], " "))
	case "cat":
		var b []byte
		if b, err = os.ReadFile(arg(2)); err == nil {
			os.Stdout.Write(b)
		}
	case "write":
		err = os.WriteFile(arg(2), []byte(strings.Join(os.Args[3:], " ")+"\n"), 0o644)
	case "dig":
		err = dig(arg(2), arg(3))
	case "disk":
		var mib int
		if mib, err = strconv.Atoi(arg(3)); err == nil {
			err = disk(arg(2), mib)
		}
	default:
		err = fmt.Errorf("unknown command %s", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func arg(i int) string {
	if len(os.Args) <= i {
		fmt.Fprintln(os.Stderr, "missing argument")
		os.Exit(2)
	}
	return os.Args[i]
}

func serve(addr string, proxyProtocol bool) error {
	host, _ := os.Hostname()
	http.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		if f := r.Header.Get("X-Forwarded-For"); f != "" {
			ip, _, _ = strings.Cut(f, ",") // behind a reverse proxy: the client it names
		}
		fmt.Fprintf(w, "%s %s\n", host, strings.TrimSpace(ip))
	})
	var unready atomic.Bool
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s\n", host)
	})
	http.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		buf := make([]byte, 64<<10)
		for n > 0 {
			k := min(n, int64(len(buf)))
			if _, err := w.Write(buf[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	http.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if unready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	http.HandleFunc("/unready", func(w http.ResponseWriter, r *http.Request) {
		unready.Store(true)
		fmt.Fprintln(w, "unready")
	})
	fmt.Println("listening on", addr)
	if !proxyProtocol {
		return http.ListenAndServe(addr, nil)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	pl := &proxyproto.Listener{Listener: ln, ConnPolicy: func(proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
		return proxyproto.REQUIRE, nil
	}}
	return http.Serve(pl, nil)
}

func udpEcho(addr string) error {
	host, _ := os.Hostname()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return err
	}
	fmt.Println("listening on", addr, "(udp)")
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		ip, _, _ := net.SplitHostPort(from.String())
		pc.WriteTo([]byte(fmt.Sprintf("%s %s %s\n", host, ip, buf[:n])), from)
	}
}

// load GETs a URL from CONC clients for SECONDS, and prints the rate and
// latency quantiles of the answered requests.
func load(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("load URL SECONDS CONC [new]")
	}
	url := args[0]
	secs, err1 := strconv.Atoi(args[1])
	conc, err2 := strconv.Atoi(args[2])
	if err1 != nil || err2 != nil {
		return fmt.Errorf("load: SECONDS and CONC are numbers")
	}
	fresh := len(args) > 3 && args[3] == "new"
	end := time.Now().Add(time.Duration(secs) * time.Second)
	var mu sync.Mutex
	var lat []time.Duration
	var errs int
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{DisableKeepAlives: fresh, MaxIdleConnsPerHost: 1}
			c := http.Client{Timeout: 5 * time.Second, Transport: tr}
			var mine []time.Duration
			bad := 0
			for time.Now().Before(end) {
				t0 := time.Now()
				resp, err := c.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil {
					bad++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(lat) == 0 {
		return fmt.Errorf("load: no request answered (%d errors)", errs)
	}
	slices.Sort(lat)
	q := func(f float64) float64 { return lat[int(f*float64(len(lat)-1))].Seconds() }
	fmt.Printf("%.1f %.6f %.6f %d\n", float64(len(lat))/float64(secs), q(0.5), q(0.99), errs)
	return nil
}

func download(url string) error {
	t0 := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return err
	}
	fmt.Printf("%d %.3f\n", n, time.Since(t0).Seconds())
	return nil
}

// hold opens N connections (each sends a request's first line, as an
// idle browser does not) and keeps them open.
func hold(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("hold ADDR N SECONDS")
	}
	n, err1 := strconv.Atoi(args[1])
	secs, err2 := strconv.Atoi(args[2])
	if err1 != nil || err2 != nil {
		return fmt.Errorf("hold: N and SECONDS are numbers")
	}
	var conns []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", args[0], 5*time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	fmt.Println(len(conns))
	time.Sleep(time.Duration(secs) * time.Second)
	for _, c := range conns {
		c.Close()
	}
	return nil
}

func dnsServe(addr string, records []string) error {
	zone := map[string][]net.IP{}
	for _, r := range records {
		name, ip, ok := strings.Cut(r, "=")
		a := net.ParseIP(ip)
		if !ok || a == nil {
			return fmt.Errorf("record %q: want NAME=IP", r)
		}
		zone[dns.Fqdn(strings.ToLower(name))] = append(zone[dns.Fqdn(strings.ToLower(name))], a)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		if len(q.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			w.WriteMsg(m)
			return
		}
		qn := strings.ToLower(q.Question[0].Name)
		ips, ok := zone[qn]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, ip := range ips {
			hdr := dns.RR_Header{Name: q.Question[0].Name, Class: dns.ClassINET, Ttl: 30}
			switch {
			case ip.To4() != nil && q.Question[0].Qtype == dns.TypeA:
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip})
			case ip.To4() == nil && q.Question[0].Qtype == dns.TypeAAAA:
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: ip})
			}
		}
		w.WriteMsg(m)
	})
	errs := make(chan error, 2)
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: addr, Net: network, Handler: h}
		go func() { errs <- srv.ListenAndServe() }()
	}
	fmt.Println("DNS on", addr, "for", len(zone), "names")
	return <-errs
}

// scan tries every TCP port, 256 at a time.
func scan(ip string) error {
	ports := make(chan int)
	open := make(chan int)
	var wg sync.WaitGroup
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ports {
				c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(p)), time.Second)
				if err == nil {
					c.Close()
					open <- p
				}
			}
		}()
	}
	go func() {
		for p := 1; p <= 65535; p++ {
			ports <- p
		}
		close(ports)
		wg.Wait()
		close(open)
	}()
	var found []int
	for p := range open {
		found = append(found, p)
	}
	slices.Sort(found)
	for _, p := range found {
		fmt.Println(p)
	}
	return nil
}

func udpAsk(addr, words string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte(words)); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	os.Stdout.Write(buf[:n])
	return nil
}

// get fetches url on a connection of its own (a new source port each
// time: Services balance each call anew, unless sticky).
func get(url string) error {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if strings.HasPrefix(url, "https:") {
		if ca, err := os.ReadFile(saDir + "ca.crt"); err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(ca)
			tr.TLSClientConfig = &tls.Config{RootCAs: pool}
		}
		if tok, err := os.ReadFile(saDir + "token"); err == nil {
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		}
	}
	c := http.Client{Timeout: 5 * time.Second, Transport: tr}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

func dig(qtype, name string) error {
	t, ok := dns.StringToType[strings.ToUpper(qtype)]
	if !ok {
		return fmt.Errorf("unknown type %s", qtype)
	}
	conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return err
	}
	if len(conf.Servers) == 0 {
		return fmt.Errorf("no nameserver in /etc/resolv.conf")
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), t)
	c := &dns.Client{Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, net.JoinHostPort(conf.Servers[0], conf.Port))
	if err != nil {
		return err
	}
	fmt.Println(dns.RcodeToString[r.Rcode])
	for _, rr := range r.Answer {
		fmt.Println(strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return nil
}

// disk measures sequential I/O in dir: mib MiB written and synced, then
// read back past the page cache.
func disk(dir string, mib int) error {
	f, err := os.CreateTemp(dir, "disk-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 1<<20)
	for i := range block {
		block[i] = byte(i * 7)
	}
	start := time.Now()
	for range mib {
		if _, err := f.Write(block); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	write := time.Since(start)
	// POSIX_FADV_DONTNEED: the data was synced, the cache may let it go.
	if err := fadviseDontNeed(f); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	start = time.Now()
	n, err := io.CopyBuffer(io.Discard, f, block)
	if err != nil {
		return err
	}
	read := time.Since(start)
	mb := float64(n) / 1e6
	fmt.Printf("%.1f %.1f\n", mb/write.Seconds(), mb/read.Seconds())
	return nil
}

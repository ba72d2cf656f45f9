package dns

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// Config configures a Server. Domain is required.
type Config struct {
	// Domain is the zone of node names, <cluster>.internal by default.
	Domain string
	// Self is this node's name, for the zone's SOA and NS records.
	Self string
	// Overlay are the overlay prefixes: the reverse names of their
	// addresses are answered here, never forwarded.
	Overlay []netip.Prefix
	// KubeDomain is the Kubernetes zone, answered once SetKubernetes has
	// been given something; default cluster.local.
	KubeDomain string
	// Upstreams are the resolvers other names go to, tried in order.
	Upstreams []netip.AddrPort
	// Exchanger replaces the forwarder to Upstreams (tests).
	Exchanger Exchanger
	// CacheBytes bounds the forwarding cache; default 8 MiB.
	CacheBytes int
	// StaleFor is how long after expiry an answer may still be served,
	// should the upstreams fail (RFC 8767); default 5 minutes.
	StaleFor time.Duration
	Logger   *slog.Logger
	Metrics  *Metrics // default: NewMetrics()
}

// Defaults.
const (
	DefaultKubeDomain = "cluster.local"
	DefaultCacheBytes = 8 << 20
	DefaultStaleFor   = 5 * time.Minute
)

// UDP sizes: what we advertise and the most we send, whatever a client
// advertises; 1232 bytes fit any path without fragments (DNS flag day
// 2020), the overlay's included.
const (
	ourUDPSize = 1232
	maxUDPSize = 1232
)

const (
	forwardTimeout = 5 * time.Second
	// staleRetry: after an upstream failure, an expired answer is served
	// at once, without asking again, for this long (RFC 8767 §4's
	// failure recheck timer).
	staleRetry = 30 * time.Second
	// maxSlow bounds the UDP queries waiting for the slow path.
	maxSlow = 1024
	// maxLocalBytes bounds the remembered authoritative answers.
	maxLocalBytes = 2 << 20
)

// Server answers DNS queries. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	log    *slog.Logger
	m      *Metrics
	ex     Exchanger
	cache  *cache
	flight flight
	ctx    context.Context // ends with Close: upstream queries
	cancel context.CancelFunc

	mu     sync.Mutex // serializes updates of local
	serial uint64
	local  atomic.Pointer[local]

	slowSem chan struct{}
	tcpSem  chan struct{}
}

// local is the data answered with authority, replaced whole on each change
// with the answers it remembers.
type local struct {
	nodes    *nodeZone
	kube     *kubeZone // nil: no Kubernetes
	kubeWire []byte
	answers  *cache
}

func (l *local) isLocal(name []byte) bool {
	return inZone(name, l.nodes.fwd.wire) || l.kube != nil && inZone(name, l.kubeWire)
}

// New makes a server with no node but this configuration's.
func New(cfg Config) *Server {
	if cfg.KubeDomain == "" {
		cfg.KubeDomain = DefaultKubeDomain
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if cfg.StaleFor <= 0 {
		cfg.StaleFor = DefaultStaleFor
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, m: cfg.Metrics, cache: newCache(cfg.CacheBytes),
		slowSem: make(chan struct{}, maxSlow), tcpSem: make(chan struct{}, maxTCPConns)}
	s.m.cache.Store(s.cache)
	s.ex = cfg.Exchanger
	if s.ex == nil {
		s.ex = newForwarder(cfg.Upstreams, s.m)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.local.Store(&local{nodes: buildNodes(cfg.Domain, cfg.Self, 0, nil, cfg.Overlay), answers: newCache(maxLocalBytes)})
	return s
}

// Close ends the upstream queries in flight. Listeners end with the
// contexts given to ServePacket and ServeStream.
func (s *Server) Close() error {
	s.cancel()
	return nil
}

// SetNodes replaces the node names. serial is the membership's version:
// an update older than the last one is ignored, so callers racing with
// each other need no lock.
func (s *Server) SetNodes(serial uint64, nodes []Node) {
	nz := buildNodes(s.cfg.Domain, s.cfg.Self, serial, nodes, s.cfg.Overlay)
	s.mu.Lock()
	defer s.mu.Unlock()
	if serial < s.serial {
		return
	}
	s.serial = serial
	old := s.local.Load()
	s.local.Store(&local{nodes: nz, kube: old.kube, kubeWire: old.kubeWire, answers: newCache(maxLocalBytes)})
}

// SetKubernetes replaces the Kubernetes names; nil stops answering the
// Kubernetes zone (its names are forwarded then, like any other).
func (s *Server) SetKubernetes(k *Kubernetes) {
	var kz *kubeZone
	var wire []byte
	if k != nil {
		kz = buildKube(s.cfg.KubeDomain, k)
		wire = kz.fwd.wire
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.local.Load()
	s.local.Store(&local{nodes: old.nodes, kube: kz, kubeWire: wire, answers: newCache(maxLocalBytes)})
}

// fast answers from a packed answer when it can; ok is false when the
// query needs the slow path. out is reused for the reply.
func (s *Server) fast(req []byte, tcp bool, out, key []byte, start time.Time) (resp []byte, ok bool) {
	q, ok := parseQuery(req, key)
	if !ok || q.qclass != dns.ClassINET {
		return nil, false
	}
	now := start.UnixNano()
	limit := q.limit(tcp)
	l := s.local.Load()
	if e := l.answers.get(q.key); e != nil {
		if resp = e.write(out, req, &q, now, false, limit); resp != nil {
			s.done(resp, kindLocal, start)
		}
		return resp, resp != nil
	}
	if l.isLocal(q.name) {
		return nil, false
	}
	e := s.cache.get(q.key)
	if e == nil {
		return nil, false
	}
	stale := false
	if now >= e.expires {
		if now >= e.serveStale.Load() || now >= e.staleUntil {
			return nil, false
		}
		stale = true
	}
	if resp = e.write(out, req, &q, now, stale, limit); resp == nil {
		return nil, false
	}
	s.m.cacheHits.Inc()
	if stale {
		s.m.cacheStale.Inc()
	}
	s.done(resp, kindCache, start)
	return resp, true
}

// done counts a reply.
func (s *Server) done(resp []byte, k kind, start time.Time) {
	s.m.response(int(resp[3] & 0xf))
	s.m.kinds[k].Observe(time.Since(start).Seconds())
}

// slow answers any query: it unpacks what the fast path could not read,
// answers errors, and computes answers, remembering them for the fast
// path. It returns nil when the query gets no reply at all.
func (s *Server) slow(req []byte, tcp bool, start time.Time) []byte {
	key := make([]byte, 0, 264)
	q, ok := parseQuery(req, key)
	if !ok {
		plain, reply := s.normalize(req, tcp)
		if reply != nil {
			s.done(reply, kindError, start)
			return reply
		}
		if plain == nil {
			s.m.dropped.Inc()
			return nil
		}
		if q, ok = parseQuery(plain, key); !ok {
			return s.formErr(req, start)
		}
		req = plain
	}
	now := start
	var e *entry
	k := kindLocal
	stale := false
	if q.qclass != dns.ClassINET {
		e, k = s.errorEntry(&q, dns.RcodeRefused), kindError
	} else {
		e, k, stale = s.resolve(&q, now)
	}
	limit := q.limit(tcp)
	resp := e.write(nil, req, &q, now.UnixNano(), stale, limit)
	if resp == nil {
		// Too big for the client: as much as fits, and TC.
		m, err := e.unpack(req, &q, now.UnixNano(), stale)
		if err != nil {
			s.log.Debug("dns: unpack of own answer", "err", err)
			return s.formErr(req, start)
		}
		m.Truncate(limit)
		if resp, err = m.Pack(); err != nil {
			return s.formErr(req, start)
		}
	}
	s.done(resp, k, start)
	return resp
}

// resolve finds the answer to q: with authority, from the cache, or from
// upstream, serving a stale answer when upstream fails.
func (s *Server) resolve(q *query, now time.Time) (e *entry, k kind, stale bool) {
	name, _, err := dns.UnpackDomainName(q.name, 0)
	if err != nil {
		return s.errorEntry(q, dns.RcodeFormatError), kindError, false
	}
	l := s.local.Load()
	m := s.replyTo(q, name)
	authoritative := false
	switch {
	case inZone(q.name, l.nodes.fwd.wire):
		l.nodes.fwd.answer(m, name, q.qtype)
		authoritative = true
	case l.kube != nil && inZone(q.name, l.kubeWire):
		l.kube.fwd.answer(m, name, q.qtype)
		authoritative = true
	default:
		if a, ok := reverseAddr(name); ok {
			authoritative = l.nodes.reverse(m, name, a, q.qtype) || l.kube != nil && l.kube.reverse(m, name, a, q.qtype)
		}
	}
	if authoritative {
		remember := true
		if target, ok := outOfZone(m, q.qtype, l); ok {
			// An ExternalName: stub resolvers do not follow a CNAME out
			// of the answer, so the answer carries the target's records.
			s.chase(m, q, target, now)
			remember = false
		}
		e, err := newEntry(m, now, 0, 0)
		if err != nil {
			s.log.Warn("dns: pack of own answer", "name", name, "err", err)
			return s.errorEntry(q, dns.RcodeServerFailure), kindError, false
		}
		if remember && !l.answers.full(q.key) {
			l.answers.put(q.key, e, 0)
		}
		return e, kindLocal, false
	}
	return s.forward(q, name, now)
}

func (s *Server) forward(q *query, name string, now time.Time) (*entry, kind, bool) {
	old := s.cache.get(q.key)
	if old != nil {
		// Here when the fast path found the answer too big for the client.
		switch n := now.UnixNano(); {
		case n < old.expires:
			s.m.cacheHits.Inc()
			return old, kindCache, false
		case n < old.serveStale.Load() && n < old.staleUntil:
			s.m.cacheHits.Inc()
			s.m.cacheStale.Inc()
			return old, kindCache, true
		}
	}
	s.m.cacheMisses.Inc()
	e, err := s.flight.do(string(q.key), func() (*entry, error) {
		up := new(dns.Msg)
		up.SetQuestion(name, q.qtype)
		up.Question[0].Qclass = q.qclass
		up.CheckingDisabled = q.cd
		up.SetEdns0(ourUDPSize, q.do)
		ctx, cancel := context.WithTimeout(s.ctx, forwardTimeout)
		defer cancel()
		r, err := s.ex.Exchange(ctx, up)
		if err != nil {
			return nil, err
		}
		r.Question = up.Question
		r.Authoritative = false
		r.RecursionAvailable = true
		ttl := cacheTTL(r)
		e, err := newEntry(r, now, ttl, s.cfg.StaleFor)
		if err != nil {
			return nil, err
		}
		if ttl > 0 {
			s.cache.put(q.key, e, now.UnixNano())
		}
		return e, nil
	})
	if err == nil && e.rcode != dns.RcodeServerFailure && e.rcode != dns.RcodeRefused {
		return e, kindForward, false
	}
	if old != nil && now.UnixNano() < old.staleUntil {
		old.serveStale.Store(now.Add(staleRetry).UnixNano())
		s.m.cacheHits.Inc()
		s.m.cacheStale.Inc()
		return old, kindCache, true
	}
	if err != nil {
		s.log.Debug("dns: forward", "name", name, "err", err)
		return s.errorEntry(q, dns.RcodeServerFailure), kindError, false
	}
	return e, kindForward, false
}

// outOfZone returns the target of the CNAME that ends m's answer, when it
// leaves the zones we answer for.
func outOfZone(m *dns.Msg, qtype uint16, l *local) (string, bool) {
	if qtype == dns.TypeCNAME || qtype == dns.TypeANY || len(m.Answer) == 0 {
		return "", false
	}
	cn, ok := m.Answer[len(m.Answer)-1].(*dns.CNAME)
	if !ok || l.isLocal(wireName(cn.Target)) {
		return "", false
	}
	return dns.CanonicalName(cn.Target), true
}

// chase appends the forwarded answer for target to m, its TTLs no longer
// than the CNAME's, and its rcode.
func (s *Server) chase(m *dns.Msg, q *query, target string, now time.Time) {
	sub := *q
	sub.name = wireName(target)
	if sub.name == nil {
		return
	}
	sub.key = append(append([]byte(nil), sub.name...), q.key[len(q.name):]...)
	e, _, _ := s.forward(&sub, target, now)
	r := new(dns.Msg)
	if err := r.Unpack(e.msg); err != nil {
		return
	}
	for _, rr := range r.Answer {
		rr.Header().Ttl = min(rr.Header().Ttl, m.Answer[0].Header().Ttl)
		m.Answer = append(m.Answer, rr)
	}
	if len(r.Answer) == 0 {
		m.Ns = r.Ns
	}
	m.Rcode = r.Rcode
}

// replyTo is the skeleton of a reply to q, before its records.
func (s *Server) replyTo(q *query, name string) *dns.Msg {
	return &dns.Msg{
		MsgHdr: dns.MsgHdr{Response: true, Opcode: dns.OpcodeQuery, RecursionDesired: q.rd,
			RecursionAvailable: true, CheckingDisabled: q.cd},
		Question: []dns.Question{{Name: name, Qtype: q.qtype, Qclass: q.qclass}},
	}
}

func (s *Server) errorEntry(q *query, rcode int) *entry {
	name, _, _ := dns.UnpackDomainName(q.name, 0)
	m := s.replyTo(q, name)
	m.Rcode = rcode
	e, err := newEntry(m, time.Time{}, 0, 0)
	if err != nil {
		// A name that came from a parsed query always packs.
		panic(err)
	}
	return e
}

package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Addresses of the lab's Internet.
var (
	InternetPrefix4 = netip.MustParsePrefix("203.0.113.0/24")
	InternetPrefix6 = netip.MustParsePrefix("2001:db8::/64")
	Router4         = netip.MustParseAddr("203.0.113.254")
	Router6         = netip.MustParseAddr("2001:db8::fe")
)

const (
	defaultGrace = 3 * time.Second
	cmdTimeout   = 30 * time.Second
	// maxPublic is the last 203.0.113.x handed out; .254 is the router.
	maxPublic = 253
)

// Options configure a Lab. The zero value is ready to use.
type Options struct {
	// Logger receives every command the lab runs, at debug level.
	// Default: slog.Default().
	Logger *slog.Logger
	// Grace is how long Close, and the end of a Host.Command's context, wait
	// after SIGTERM before SIGKILL. Default 3s.
	Grace time.Duration
	// Shaping chooses how homes' uplinks are delayed and made lossy.
	Shaping Shaping
}

// Lab is one set of namespaces: an Internet, public hosts and homes.
// Its methods are safe for concurrent use.
type Lab struct {
	// Prefix starts the name of every namespace of the lab: "hl" and 6 hex digits.
	Prefix string
	// Internet is the router of the lab's Internet: it owns the bridge every
	// public host and NAT box is plugged into.
	Internet *Host

	log     *slog.Logger
	ctx     context.Context
	grace   time.Duration
	shaping Shaping

	mu       sync.Mutex
	closed   bool
	closeErr error
	netns    []string // in creation order
	names    map[string]bool
	octet    int // last 203.0.113.x handed out
	wires    []*wire
}

// New creates a lab and its Internet. ctx bounds the commands the lab runs to
// build itself, in New and in later calls such as AddHome; Close works even
// after ctx is done.
func New(ctx context.Context, opts Options) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("lab: needs root (network namespaces, iptables)")
	}
	if err := CheckTools(); err != nil {
		return nil, err
	}
	l := &Lab{
		log:   opts.Logger,
		ctx:   ctx,
		grace: opts.Grace,
		names: map[string]bool{},
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.grace <= 0 {
		l.grace = defaultGrace
	}
	prefix, err := freePrefix()
	if err != nil {
		return nil, err
	}
	l.Prefix = prefix
	l.log = l.log.With("lab", prefix)
	if err := l.buildInternet(); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	if l.shaping, err = l.pickShaping(opts.Shaping); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	l.log.Info("lab ready", "internet", l.Internet.Netns, "shaping", l.shaping)
	return l, nil
}

// labName matches the namespaces of every lab; the prefix is group 1.
var labName = regexp.MustCompile(`^(hl[0-9a-f]{6})-`)

// freePrefix picks a random prefix that no existing namespace uses.
func freePrefix() (string, error) {
	names, err := listNetns()
	if err != nil {
		return "", err
	}
	for range 16 {
		b := make([]byte, 3)
		if _, err := rand.Read(b); err != nil {
			return "", fmt.Errorf("lab prefix: %w", err)
		}
		p := "hl" + hex.EncodeToString(b)
		taken := false
		for _, n := range names {
			if strings.HasPrefix(n, p+"-") {
				taken = true
				break
			}
		}
		if !taken {
			return p, nil
		}
	}
	return "", errors.New("lab: no free namespace prefix")
}

// listNetns returns the names `ip netns list` shows.
func listNetns() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list netns: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

func (l *Lab) buildInternet() error {
	h, err := l.newHost("internet")
	if err != nil {
		return err
	}
	h.IPv4, h.IPv6 = Router4, Router6
	l.Internet = h
	owner, err := ownerMark(os.Getpid())
	if err != nil {
		return err
	}
	if err := l.ip(h.Netns,
		"link add br0 type bridge",
		fmt.Sprintf("link set br0 alias %s", owner),
		fmt.Sprintf("addr add %s/24 dev br0", Router4),
		fmt.Sprintf("addr add %s/64 dev br0 nodad", Router6),
		"link set br0 up",
	); err != nil {
		return err
	}
	return l.sysctl(h.Netns, map[string]string{
		"net/ipv4/ip_forward":                 "1",
		"net/ipv6/conf/all/forwarding":        "1",
		"net/bridge/bridge-nf-call-iptables":  "0",
		"net/bridge/bridge-nf-call-ip6tables": "0",
	})
}

// hostName is what a host's name may be: it ends up in namespace names.
var hostName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// newHost creates the namespace of a new host, with lo up and without
// duplicate address detection (every address in the lab is unique by
// construction, and DAD would hold addresses back for a second).
func (l *Lab) newHost(name string) (*Host, error) {
	if !hostName.MatchString(name) {
		return nil, fmt.Errorf("lab: bad host name %q: want lower-case letters, digits and dashes", name)
	}
	ns := l.Prefix + "-" + name
	// Under the lock, so that Close never misses a namespace being made.
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		return nil, errors.New("lab: closed")
	case l.names[name]:
		l.mu.Unlock()
		return nil, fmt.Errorf("lab: host %q exists", name)
	}
	if _, err := l.run(l.ctx, "", "ip", "netns", "add", ns); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	l.names[name] = true
	l.netns = append(l.netns, ns)
	l.mu.Unlock()
	h := &Host{Name: name, Netns: ns, lab: l}
	if err := l.sysctl(ns, map[string]string{
		"net/ipv6/conf/all/accept_dad":     "0",
		"net/ipv6/conf/default/accept_dad": "0",
		"net/ipv6/conf/all/accept_ra":      "0",
		"net/ipv6/conf/default/accept_ra":  "0",
	}); err != nil {
		return nil, err
	}
	return h, l.ip(ns, "link set lo up")
}

// allocPublic hands out the next unused 203.0.113.x. Addresses are never
// reused within a lab, so a stale peer never reaches a newcomer.
func (l *Lab) allocPublic() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.octet >= maxPublic {
		return 0, errors.New("lab: no public address left in 203.0.113.0/24")
	}
	l.octet++
	return l.octet, nil
}

// public4 and public6 are the Internet addresses of number n. The IPv6 one
// reuses n's decimal digits, so 203.0.113.12 goes with 2001:db8::12.
func public4(n int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(n)}) }
func public6(n int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("2001:db8::%d", n)) }

// AddPublicHost adds a host plugged straight into the Internet, as an anchor
// or a VPS: next free 203.0.113.x/24 and 2001:db8::x/64, routes via the router.
func (l *Lab) AddPublicHost(name string) (*Host, error) {
	n, err := l.allocPublic()
	if err != nil {
		return nil, err
	}
	h, err := l.newHost(name)
	if err != nil {
		return nil, err
	}
	h.IPv4, h.IPv6 = public4(n), public6(n)
	port := fmt.Sprintf("p%d", n)
	if err := l.ip(l.Internet.Netns,
		fmt.Sprintf("link add %s type veth peer name eth0 netns %s", port, h.Netns),
		fmt.Sprintf("link set %s master br0 up", port),
	); err != nil {
		return nil, err
	}
	if err := l.ip(h.Netns,
		fmt.Sprintf("addr add %s/24 dev eth0", h.IPv4),
		fmt.Sprintf("addr add %s/64 dev eth0 nodad", h.IPv6),
		"link set eth0 up",
		fmt.Sprintf("route add default via %s", Router4),
		fmt.Sprintf("route add default via %s", Router6),
	); err != nil {
		return nil, err
	}
	l.log.Info("public host", "name", name, "ipv4", h.IPv4, "ipv6", h.IPv6)
	return h, nil
}

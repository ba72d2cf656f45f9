package lab

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// NAT is the mapping behaviour of a home's box.
type NAT int

const (
	// EIM is MASQUERADE: endpoint-independent mapping, a socket keeps its
	// public port whoever it talks to; hole punching works.
	EIM NAT = iota
	// Symmetric is MASQUERADE --random-fully: a new public port for each
	// destination; hole punching fails, a relay is needed.
	Symmetric
)

func (n NAT) String() string {
	switch n {
	case EIM:
		return "eim"
	case Symmetric:
		return "symmetric"
	}
	return fmt.Sprintf("NAT(%d)", int(n))
}

// LANPrefix is every home's IPv4 LAN, as with real home boxes.
var LANPrefix = netip.MustParsePrefix("192.168.1.0/24")

// HomeOptions describe a home.
type HomeOptions struct {
	NAT NAT
	// Delay is added to each direction of the uplink; Loss is the percentage
	// of packets lost on each direction. See Home.SetDelay.
	Delay time.Duration
	Loss  float64
	// Machines is the number of machines on the LAN; 0 means 1.
	Machines int
	// IPv6 gives the home global IPv6, as many ISPs do: the box gets
	// 2001:db8::x on its uplink and routes 2001:db8:x::/64 (x as in its
	// 203.0.113.x) to the LAN, behind a stateful firewall, without NAT.
	IPv6 bool
}

// Home is a LAN of machines behind a NAT box.
type Home struct {
	Name string
	// Box is the NAT box; its IPv4 is its LAN address, 192.168.1.1.
	Box *Host
	// Machines are on the LAN: 192.168.1.2, .3, …
	Machines []*Host
	// PublicIP is the box's address on the Internet; Renumber changes it.
	PublicIP netip.Addr
	NAT      NAT

	lab  *Lab
	port string // the uplink's end in the Internet namespace
	mu   sync.Mutex
	wire *wire // nil with netem
	ipv6 bool
}

// AddHome adds a home: a NAT box plugged into the Internet with the next
// free 203.0.113.x, and its machines on a LAN bridge, 192.168.1.0/24.
func (l *Lab) AddHome(name string, o HomeOptions) (*Home, error) {
	if o.Machines == 0 {
		o.Machines = 1
	}
	if o.Machines < 0 || o.Machines > 200 {
		return nil, fmt.Errorf("home %s: %d machines: want 1 to 200", name, o.Machines)
	}
	if o.NAT != EIM && o.NAT != Symmetric {
		return nil, fmt.Errorf("home %s: unknown NAT %v", name, o.NAT)
	}
	n, err := l.allocPublic()
	if err != nil {
		return nil, err
	}
	box, err := l.newHost(name + "-box")
	if err != nil {
		return nil, err
	}
	box.IPv4 = netip.MustParseAddr("192.168.1.1")
	h := &Home{Name: name, Box: box, PublicIP: public4(n), NAT: o.NAT, lab: l, port: fmt.Sprintf("p%d", n), ipv6: o.IPv6}
	if h.wire, err = l.uplink(box, h.port); err != nil {
		return nil, err
	}
	lan6 := netip.MustParsePrefix(fmt.Sprintf("2001:db8:%d::/64", n))
	cmds := []string{
		fmt.Sprintf("addr add %s/24 dev wan", h.PublicIP),
		"link set wan up",
		fmt.Sprintf("route add default via %s", Router4),
		"link add lan type bridge",
		fmt.Sprintf("addr add %s/24 dev lan", box.IPv4),
		"link set lan up",
	}
	sysctls := map[string]string{
		"net/ipv4/ip_forward":                 "1",
		"net/bridge/bridge-nf-call-iptables":  "0",
		"net/bridge/bridge-nf-call-ip6tables": "0",
	}
	if o.IPv6 {
		box.IPv6 = lan6.Addr().Next()
		cmds = append(cmds,
			fmt.Sprintf("addr add %s/64 dev wan nodad", public6(n)),
			fmt.Sprintf("route add default via %s", Router6),
			fmt.Sprintf("addr add %s/64 dev lan nodad", box.IPv6),
		)
		sysctls["net/ipv6/conf/all/forwarding"] = "1"
	}
	if err := l.ip(box.Netns, cmds...); err != nil {
		return nil, err
	}
	if err := l.sysctl(box.Netns, sysctls); err != nil {
		return nil, err
	}
	if o.IPv6 {
		if err := l.ip(l.Internet.Netns, fmt.Sprintf("route add %s via %s", lan6, public6(n))); err != nil {
			return nil, err
		}
	}
	if err := h.firewall(); err != nil {
		return nil, err
	}
	for i := 1; i <= o.Machines; i++ {
		m, err := h.addMachine(i, lan6)
		if err != nil {
			return nil, err
		}
		h.Machines = append(h.Machines, m)
	}
	if o.Delay != 0 || o.Loss != 0 {
		if err := h.SetDelay(o.Delay, o.Loss); err != nil {
			return nil, err
		}
	}
	l.log.Info("home", "name", name, "public", h.PublicIP, "nat", o.NAT, "machines", o.Machines, "ipv6", o.IPv6)
	return h, nil
}

// firewall installs the NAT and drops unsolicited inbound packets, as home
// boxes do. Hole punching through MASQUERADE needs the INPUT rule: without
// it, a peer's first packet makes a conntrack entry on the box itself, and
// the box then maps the LAN socket to another port.
func (h *Home) firewall() error {
	masq := []string{"iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
	if h.NAT == Symmetric {
		masq = append(masq, "--random-fully")
	}
	rules := [][]string{
		masq,
		{"iptables", "-w", "-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"},
		{"iptables", "-w", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP"},
	}
	if h.ipv6 {
		rules = append(rules,
			// Neighbour discovery must pass.
			[]string{"ip6tables", "-w", "-A", "INPUT", "-i", "wan", "-p", "ipv6-icmp", "-j", "ACCEPT"},
			[]string{"ip6tables", "-w", "-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"},
			[]string{"ip6tables", "-w", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP"},
		)
	}
	for _, r := range rules {
		if _, err := h.lab.run(h.lab.ctx, h.Box.Netns, r...); err != nil {
			return fmt.Errorf("home %s: firewall: %w", h.Name, err)
		}
	}
	return nil
}

// AllowIPv6 opens the box's IPv6 firewall to a LAN address and port, as a
// user does in the box's settings to publish a service at home.
func (h *Home) AllowIPv6(to netip.Addr, proto string, port uint16) error {
	if !h.ipv6 {
		return fmt.Errorf("home %s has no IPv6", h.Name)
	}
	_, err := h.lab.run(h.lab.ctx, h.Box.Netns, "ip6tables", "-w", "-I", "FORWARD", "1", "-i", "wan", "-d", to.String(),
		"-p", proto, "--dport", fmt.Sprint(port), "-j", "ACCEPT")
	return err
}

// addMachine plugs machine i into the LAN at 192.168.1.(i+1).
func (h *Home) addMachine(i int, lan6 netip.Prefix) (*Host, error) {
	l := h.lab
	m, err := l.newHost(fmt.Sprintf("%s-%d", h.Name, i))
	if err != nil {
		return nil, err
	}
	m.IPv4 = netip.AddrFrom4([4]byte{192, 168, 1, byte(i + 1)})
	port := fmt.Sprintf("m%d", i)
	if err := l.ip(h.Box.Netns,
		fmt.Sprintf("link add %s type veth peer name eth0 netns %s", port, m.Netns),
		fmt.Sprintf("link set %s master lan up", port),
	); err != nil {
		return nil, err
	}
	cmds := []string{
		fmt.Sprintf("addr add %s/24 dev eth0", m.IPv4),
		"link set eth0 up",
		fmt.Sprintf("route add default via %s", h.Box.IPv4),
	}
	if h.ipv6 {
		a := lan6.Addr().As16()
		a[15] = byte(i + 1)
		m.IPv6 = netip.AddrFrom16(a)
		cmds = append(cmds,
			fmt.Sprintf("addr add %s/64 dev eth0 nodad", m.IPv6),
			fmt.Sprintf("route add default via %s", h.Box.IPv6),
		)
	}
	return m, l.ip(m.Netns, cmds...)
}

// Renumber gives the box a new public IPv4 address and flushes its conntrack
// table, as a router reboot or an ISP renumbering would: every mapping is lost.
// The IPv6 prefix stays.
func (h *Home) Renumber() (netip.Addr, error) {
	l := h.lab
	n, err := l.allocPublic()
	if err != nil {
		return netip.Addr{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old, addr := h.PublicIP, public4(n)
	if err := l.ip(h.Box.Netns,
		fmt.Sprintf("addr del %s/24 dev wan", old),
		fmt.Sprintf("addr add %s/24 dev wan", addr),
		fmt.Sprintf("route replace default via %s dev wan", Router4),
	); err != nil {
		return netip.Addr{}, fmt.Errorf("home %s: renumber: %w", h.Name, err)
	}
	if _, err := l.run(l.ctx, h.Box.Netns, "conntrack", "-F"); err != nil {
		return netip.Addr{}, fmt.Errorf("home %s: renumber: %w", h.Name, err)
	}
	h.PublicIP = addr
	l.log.Info("renumbered", "home", h.Name, "old", old, "new", addr)
	return addr, nil
}

// UplinkCounters returns the bytes received and sent on the box's uplink,
// Ethernet headers included (14 bytes a packet), for idle-traffic measures.
func (l *Lab) UplinkCounters(h *Home) (rxBytes, txBytes uint64, err error) {
	out, err := l.run(l.ctx, "", "ip", "-n", h.Box.Netns, "-j", "-s", "link", "show", "dev", "wan")
	if err != nil {
		return 0, 0, err
	}
	var links []struct {
		Stats struct {
			RX struct{ Bytes uint64 } `json:"rx"`
			TX struct{ Bytes uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return 0, 0, fmt.Errorf("home %s: uplink counters: %q: %w", h.Name, out, err)
	}
	return links[0].Stats.RX.Bytes, links[0].Stats.TX.Bytes, nil
}

// ExpireMappings drops the box's mappings of UDP flows from a LAN port to
// a remote address and port (zero: any), as when they time out: the next
// packet of such a flow gets a new mapping. It returns how many it dropped.
func (h *Home) ExpireMappings(lanPort uint16, to netip.Addr, toPort uint16) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	argv := []string{"conntrack", "-D", "-p", "udp", "--orig-port-src", strconv.Itoa(int(lanPort))}
	if to.IsValid() {
		argv = append(argv, "--orig-dst", to.String())
	}
	if toPort != 0 {
		argv = append(argv, "--orig-port-dst", strconv.Itoa(int(toPort)))
	}
	out, err := h.lab.run(h.lab.ctx, h.Box.Netns, argv...)
	m := flowsDeleted.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("home %s: expire mappings: %v: %q", h.Name, err, out)
	}
	n, _ := strconv.Atoi(m[1])
	if err != nil && n != 0 { // conntrack fails when it deletes nothing
		return 0, fmt.Errorf("home %s: expire mappings: %w", h.Name, err)
	}
	return n, nil
}

var flowsDeleted = regexp.MustCompile(`(\d+) flow entries have been deleted`)

// SetNATKeepMappings changes the box's mapping behaviour at run time, for
// new flows only: existing mappings stay, as after a change of the box's
// settings without a restart.
func (h *Home) SetNATKeepMappings(n NAT) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	masq := []string{"iptables", "-w", "-t", "nat", "-R", "POSTROUTING", "1", "-o", "wan", "-j", "MASQUERADE"}
	if n == Symmetric {
		masq = append(masq, "--random-fully")
	}
	if _, err := h.lab.run(h.lab.ctx, h.Box.Netns, masq...); err != nil {
		return fmt.Errorf("home %s: set NAT: %w", h.Name, err)
	}
	h.NAT = n
	h.lab.log.Info("NAT changed", "home", h.Name, "nat", n)
	return nil
}

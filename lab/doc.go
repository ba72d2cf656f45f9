// Package lab builds, on one machine, a small Internet out of network
// namespaces: public hosts (anchors, VPSs), and homes whose machines sit
// behind a NAT box, as real homes do. Tests, benchmarks and the demo run
// hepto in it.
//
//	New(ctx, Options) *Lab           the Internet: a bridge, 203.0.113.0/24 and 2001:db8::/64,
//	                                 with a router at 203.0.113.254 and 2001:db8::fe
//	ForTest(t, Options) *Lab         New, closed when the test ends; NeedRoot skips without root
//	Lab.AddPublicHost(name) *Host    on the bridge: 203.0.113.x/24, 2001:db8::x/64
//	Lab.AddHome(name, HomeOptions)   a box with the next 203.0.113.x on its uplink ("wan"), its
//	                                 LAN bridge ("lan") at 192.168.1.1/24 in every home, machines
//	                                 at 192.168.1.2, .3, …; with HomeOptions.IPv6, also
//	                                 2001:db8:x::/64, routed and firewalled, not NATed
//	Home.SetDelay(d, loss)           delay and loss on each direction of the uplink
//	Home.Renumber()                  a new public IPv4 and an empty conntrack table
//	Lab.UplinkCounters(home)         bytes through the uplink
//	Host.Command, Run, Start         processes in the host's namespace (`ip netns exec`)
//	Host.Do, ListenPacket, Listen,   this process's sockets, made in the host's namespace
//	  DialContext, Ping
//	Lab.Close, Sweep, SweepStale     every process killed, every namespace deleted
//	Stale(prefix)                    whether a lab's process is gone
//
// A box masquerades its LAN behind its public address: EIM is MASQUERADE
// (endpoint-independent mapping), Symmetric is MASQUERADE --random-fully. It
// drops unsolicited inbound packets, in INPUT and FORWARD, as home boxes do;
// without that, hole punching through MASQUERADE fails.
//
// Delay and loss come from tc netem on both ends of a veth uplink when the
// kernel has netem. Otherwise (ShapeWire) the uplink is a pair of TAP devices
// that the lab's own process joins, delaying and dropping frames itself; such
// uplinks live as long as that process. ShapeNone keeps plain veth uplinks,
// the fastest, without delay nor loss: for benchmarks.
//
// Every namespace is named PREFIX-HOST, where PREFIX is "hl" and 6 random hex
// digits, unique to the Lab (Lab.Prefix), so labs do not collide: the Internet
// router is PREFIX-internet, a home's box PREFIX-HOME-box and its machines
// PREFIX-HOME-1, -2, …. Interfaces are named inside their namespaces only:
// eth0 on hosts and machines, wan and lan on boxes, pN (N as in 203.0.113.N)
// and br0 on the Internet router, mN (machine N) on a box's LAN bridge.
//
// Close kills every process in the lab's namespaces, SIGTERM first, SIGKILL
// after Options.Grace, then deletes the namespaces. Processes started through
// Host also die with the lab's process (PR_SET_PDEATHSIG). Namespaces left by
// a lab whose process was killed show with
//
//	ip netns list | grep -E '^hl[0-9a-f]{6}-'
//
// and go with Sweep(prefix), or SweepStale(), which spares labs whose process
// still runs: New marks the Internet bridge's alias with its pid and start time.
//
// The lab needs root and the commands ip and tc (Debian package iproute2),
// iptables and ip6tables (iptables), and conntrack (conntrack).
package lab

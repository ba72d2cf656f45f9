package lab

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Offload flags of TUNSETOFFLOAD (linux/if_tun.h); x/sys does not define them.
const (
	tunFCsum = 0x01
	tunFTSO4 = 0x02
	tunFTSO6 = 0x04
	tunFUSO4 = 0x20
	tunFUSO6 = 0x40
)

// vnetHdrLen is the size of struct virtio_net_hdr, which prefixes every frame.
const vnetHdrLen = 10

// openTap creates a TAP device named name in the calling thread's network
// namespace. It carries offloaded (GSO, checksum-partial) frames, so a wire
// between two TAPs moves 64 KiB per system call instead of one MTU.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tap %s: %w", name, err)
	}
	// USO needs Linux 6.2; older kernels still get TCP offloads.
	offloads := tunFCsum | tunFTSO4 | tunFTSO6 | tunFUSO4 | tunFUSO6
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, offloads); err != nil {
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("tap %s offloads: %w", name, err)
		}
	}
	// Non-blocking, so the runtime poller serves it and Close wakes readers.
	return os.NewFile(uintptr(fd), "tap:"+name), nil
}

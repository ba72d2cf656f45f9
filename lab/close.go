package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Close kills every process in the lab's namespaces (SIGTERM, then SIGKILL
// after the grace period), cuts the uplinks and deletes every namespace.
// Calling it again returns the first call's result.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return l.closeErr
	}
	l.closed = true
	l.closeErr = teardown(l.netns, l.wires, l.grace, l.log)
	l.wires = nil
	if l.closeErr == nil {
		l.log.Info("lab closed")
	}
	return l.closeErr
}

// Sweep deletes the namespaces of the lab with the given prefix (as in
// "hl1a2b3c"), after killing the processes inside: for a lab whose process
// died before its Close. The same by hand:
//
//	ip netns list | grep '^hl1a2b3c-' | xargs -n1 ip netns del
//
// which, unlike Sweep, leaves running the processes inside them.
func Sweep(prefix string) error {
	if !labName.MatchString(prefix + "-") {
		return fmt.Errorf("lab: sweep: %q is not a lab prefix", prefix)
	}
	names, err := listNetns()
	if err != nil {
		return err
	}
	var mine []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix+"-") {
			mine = append(mine, n)
		}
	}
	return teardown(mine, nil, defaultGrace, slog.Default().With("lab", prefix))
}

// staleAge is how old an unmarked lab must be before SweepStale takes it for
// dead rather than being built.
const staleAge = time.Minute

// SweepStale sweeps every lab whose owning process has exited, and returns
// their prefixes. Labs of running processes, in this or other programs, stay.
func SweepStale() ([]string, error) {
	names, err := listNetns()
	if err != nil {
		return nil, err
	}
	var prefixes []string
	for _, n := range names {
		if m := labName.FindStringSubmatch(n); m != nil && !slices.Contains(prefixes, m[1]) {
			prefixes = append(prefixes, m[1])
		}
	}
	var swept []string
	var errs []error
	for _, p := range prefixes {
		if !Stale(p) {
			continue
		}
		if err := Sweep(p); err != nil {
			errs = append(errs, err)
			continue
		}
		swept = append(swept, p)
	}
	return swept, errors.Join(errs...)
}

// Stale tells whether the process that made the lab with prefix p is gone:
// New marks the Internet bridge with its pid and start time, which pid reuse
// cannot fake.
func Stale(p string) bool {
	ns := p + "-internet"
	out, err := runCmd(context.Background(), nil, "", "ip", "-n", ns, "-o", "link", "show", "br0")
	if err == nil {
		if i := strings.Index(out, "alias "); i >= 0 {
			mark := strings.Fields(out[i+len("alias "):])[0]
			var pid int
			if _, err := fmt.Sscanf(mark, "hepto-lab:%d:", &pid); err == nil {
				want, err := ownerMark(pid)
				return err != nil || want != mark
			}
		}
	}
	// No mark: dead if its namespaces are old, else maybe still being built.
	st, err := os.Stat(filepath.Join(netnsDir, ns))
	return err != nil || time.Since(st.ModTime()) > staleAge
}

// ownerMark names process pid and its start time.
func ownerMark(pid int) (string, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", fmt.Errorf("owner mark: %w", err)
	}
	// Fields after the command name, which may hold spaces; starttime is the 22nd.
	i := strings.LastIndexByte(string(stat), ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 20 {
		return "", fmt.Errorf("owner mark: bad /proc/%d/stat", pid)
	}
	return fmt.Sprintf("hepto-lab:%d:%s", pid, f[19]), nil
}

// teardown kills the processes in namespaces names, closes wires and deletes
// the namespaces, last made first.
func teardown(names []string, wires []*wire, grace time.Duration, log *slog.Logger) error {
	var errs []error
	inodes := map[uint64]bool{}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(netnsDir, n), &st); err == nil {
			inodes[st.Ino] = true
		}
	}
	if err := killNetnsProcs(inodes, grace, log); err != nil {
		errs = append(errs, err)
	}
	for _, w := range wires {
		if err := w.close(); err != nil {
			errs = append(errs, fmt.Errorf("close uplink: %w", err))
		}
	}
	var batch strings.Builder
	for _, n := range slices.Backward(names) {
		if _, err := os.Stat(filepath.Join(netnsDir, n)); err == nil {
			fmt.Fprintf(&batch, "netns del %s\n", n)
		}
	}
	if batch.Len() > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
		defer cancel()
		if _, err := runCmd(ctx, log, batch.String(), "ip", "-force", "-batch", "-"); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(netnsDir, n)); err == nil {
			errs = append(errs, fmt.Errorf("lab: namespace %s left behind", n))
		}
	}
	return errors.Join(errs...)
}

// killNetnsProcs ends every process whose network namespace is one of inodes:
// SIGTERM to it and its group, then SIGKILL to what is left after grace.
func killNetnsProcs(inodes map[uint64]bool, grace time.Duration, log *slog.Logger) error {
	if len(inodes) == 0 {
		return nil
	}
	pids := pidsIn(inodes)
	if len(pids) == 0 {
		return nil
	}
	log.Info("stopping processes", "pids", pids)
	for _, pid := range pids {
		signalProc(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for len(pids) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		pids = pidsIn(inodes)
	}
	if len(pids) == 0 {
		return nil
	}
	log.Warn("killing processes that ignored SIGTERM", "pids", pids, "grace", grace)
	for range 50 {
		for _, pid := range pids {
			signalProc(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
		if pids = pidsIn(inodes); len(pids) == 0 {
			return nil
		}
	}
	return fmt.Errorf("lab: processes %v survive SIGKILL", pids)
}

// signalProc signals pid and, when it leads one, its process group.
func signalProc(pid int, sig syscall.Signal) {
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		syscall.Kill(-pid, sig)
	}
	syscall.Kill(pid, sig)
}

// pidsIn lists the live processes in the namespaces, as `ip netns pids` does.
// Zombies have left their namespace and are not listed.
func pidsIn(inodes map[uint64]bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue // our own threads visit namespaces, in Host.Do
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && inodes[st.Ino] {
			pids = append(pids, pid)
		}
	}
	return pids
}

package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hepto-net/hepto/state"
)

// Kubernetes nodes outlive their daemon on purpose: containers keep
// running when hepto stops. RemovePods undoes what a lab node left: it
// kills the processes of its pods' cgroups, unmounts what is mounted
// under the cluster's directory (container root file systems, pods'
// network namespaces and volumes), and removes the cgroups.
func (c *Cluster) RemovePods() error {
	var errs []error
	for _, n := range c.nodes {
		if n.Proc != nil {
			n.Proc.Stop(syscall.SIGKILL, 5*time.Second)
		}
	}
	for _, n := range c.nodes {
		dirs := cgroupDirs(n.cgroup())
		if err := killCgroups(dirs); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n.Name, err))
		}
		// Deepest first.
		slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
		for _, d := range dirs {
			os.Remove(d)
		}
	}
	// The parents, once no node of any run is left in them.
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/hepto")
	for _, p := range append(parents, "/sys/fs/cgroup/hepto") {
		os.Remove(p)
	}
	if err := unmountUnder(c.Dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// PowerCut stops a node as a power cut does: hepto and its pods'
// processes killed at once, nothing cleaned up.
func (n *Node) PowerCut() error {
	if n.Proc != nil {
		n.Proc.Stop(syscall.SIGKILL, 5*time.Second)
	}
	return killCgroups(cgroupDirs(n.cgroup()))
}

// cgroup is the node's cgroup name, under /hepto.
func (n *Node) cgroup() string { return n.Name + "-" + state.Dir(n.State).ID() }

// killCgroups kills every process in dirs, until none is left (5 s).
func killCgroups(dirs []string) error {
	for try := 0; ; try++ {
		pids := cgroupPids(dirs)
		if len(pids) == 0 {
			return nil
		}
		if try == 50 {
			return fmt.Errorf("processes left in its cgroups: %v", pids)
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cgroupDirs are the directories of cgroup /hepto/NAME, and all below, in
// every hierarchy (one with cgroup v2, one per controller with v1).
func cgroupDirs(name string) []string {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/hepto/" + name)
	if v2 := "/sys/fs/cgroup/hepto/" + name; isDir(v2) {
		roots = append(roots, v2)
	}
	var out []string
	for _, r := range roots {
		filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

func cgroupPids(dirs []string) []int {
	var out []int
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// unmountUnder detaches every mount point under dir, deepest first.
func unmountUnder(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], abs+"/") {
			points = append(points, unescapeMount(fields[4]))
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

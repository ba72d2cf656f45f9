// Package ipam hands out pod addresses from a node's pod ranges. Its whole
// state is one small JSON file, read and rewritten under an exclusive lock
// by each plugin process, and replaced by rename: concurrent plugins never
// hand out an address twice, and a crash at any point leaves either the old
// file or the new one.
package ipam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Files of a store's directory.
const (
	DataFile = "allocations.json"
	LockFile = "lock"
	tempFile = DataFile + ".tmp" // fixed: only the lock holder writes it
)

// Attachment is one (container, interface) and the addresses it holds,
// in the order of the ranges they came from.
type Attachment struct {
	ContainerID string       `json:"containerID"`
	IfName      string       `json:"ifname"`
	IPs         []netip.Addr `json:"ips"`
}

// state is the file's content.
type state struct {
	// Boot is the kernel's boot ID when the file was written. Network
	// namespaces do not survive a reboot, so neither do attachments.
	Boot string `json:"boot"`
	// Last is the last address handed out in each range: allocation goes
	// round the range, so that a freed address is not reused at once.
	Last        map[string]netip.Addr `json:"last,omitempty"`
	Attachments []Attachment          `json:"attachments"`
}

// Store is a locked, loaded store; Close unlocks it.
type Store struct {
	dir   string
	lock  *os.File
	st    state
	dirty bool
}

// Open locks the store in dir, creating it, and reads it. It blocks while
// another process holds the lock; the kernel releases the lock of a process
// that dies.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	// The lock is a file of its own: the data file is replaced by rename, and
	// a lock on a replaced inode would protect nothing.
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("ipam: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ipam: lock %s: %w", f.Name(), err)
	}
	st, err := load(dir)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Store{dir: dir, lock: f, st: st}, nil
}

// Close writes nothing and releases the lock.
func (s *Store) Close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close() // releases the flock
	s.lock = nil
	return err
}

// Commit writes the store if it changed. The file is written beside the old
// one and renamed over it, without fsync: a process that dies leaves the
// page cache intact, and a power cut takes every pod's namespace with it, so
// the attachments of an earlier boot are dropped on load anyway.
func (s *Store) Commit() error {
	if !s.dirty {
		return nil
	}
	s.st.Boot = bootID()
	b, err := json.Marshal(s.st)
	if err != nil {
		return fmt.Errorf("ipam: encode: %w", err)
	}
	tmp := filepath.Join(s.dir, tempFile)
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, DataFile)); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	s.dirty = false
	return nil
}

// Load reads the store without locking it, for readers (CHECK, STATUS):
// writers replace the file whole, so a reader sees one state or the next.
func Load(dir string) ([]Attachment, error) {
	st, err := load(dir)
	return st.Attachments, err
}

func load(dir string) (state, error) {
	path := filepath.Join(dir, DataFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return state{}, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("ipam: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		// Only a power cut can leave a torn file (see Commit), and then every
		// attachment it held is gone; a file of this boot is left for a person.
		if fi, serr := os.Stat(path); serr == nil && fi.ModTime().Before(bootTime()) {
			return state{}, nil
		}
		return state{}, fmt.Errorf("ipam: %s is corrupt: %w", path, err)
	}
	if st.Boot != bootID() {
		st.Attachments = nil
	}
	return st, nil
}

// Find returns the attachment of (id, ifname).
func (s *Store) Find(id, ifname string) (Attachment, bool) {
	return find(s.st.Attachments, id, ifname)
}

func find(atts []Attachment, id, ifname string) (Attachment, bool) {
	for _, a := range atts {
		if a.ContainerID == id && a.IfName == ifname {
			return a, true
		}
	}
	return Attachment{}, false
}

// Attachments are the store's attachments.
func (s *Store) Attachments() []Attachment { return slices.Clone(s.st.Attachments) }

// Release forgets the attachment of (id, ifname), if any.
func (s *Store) Release(id, ifname string) bool {
	n := len(s.st.Attachments)
	s.st.Attachments = slices.DeleteFunc(s.st.Attachments, func(a Attachment) bool {
		return a.ContainerID == id && a.IfName == ifname
	})
	if len(s.st.Attachments) == n {
		return false
	}
	s.dirty = true
	return true
}

// bootID identifies this boot of the kernel.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return string(bytes.TrimSpace(b))
}

// bootTime is when the kernel booted (btime in /proc/stat).
func bootTime() time.Time {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(sec, 0)
			}
		}
	}
	return time.Time{}
}

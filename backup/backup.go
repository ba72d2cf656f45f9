// Package backup writes and reads hepto's backup files: what a control
// plane needs to come back on a fresh machine (the cluster's key and
// state, the Kubernetes CAs, an etcd snapshot), as named files in a tar
// archive, sealed with XChaCha20-Poly1305 under a 32-byte key that the
// cluster's administrator keeps apart (STATE/backup.key). A backup can so
// be kept on any node, or anywhere, without giving away what it holds.
package backup

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Magic starts every backup file, so that a wrong file is told apart from
// a damaged one.
const Magic = "hepto-backup/v1\n"

// MaxSize bounds what Open reads: a backup is the cluster's state and one
// etcd snapshot (etcd's own quota is 2 GiB; small clusters' are a few MB).
const MaxSize = 2 << 30

// Key seals and opens backups.
type Key [chacha20poly1305.KeySize]byte

// NewKey makes a random key.
func NewKey() (Key, error) {
	var k Key
	_, err := rand.Read(k[:])
	return k, err
}

// String is the key's text form: 64 hex digits, as in backup.key.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// ParseKey reads a key's text form.
func ParseKey(s string) (Key, error) {
	var k Key
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(k) {
		return k, errors.New("a backup key is 64 hexadecimal digits")
	}
	copy(k[:], b)
	return k, nil
}

// File is one file of a backup: a slash-separated relative path.
type File struct {
	Name string
	Mode int64
	Data []byte
}

// Errors of Open.
var (
	ErrNotBackup = errors.New("not a hepto backup file")
	ErrWrongKey  = errors.New("the backup does not open with this key (wrong key, or a damaged file)")
)

// Seal writes files as a sealed backup to w.
func Seal(w io.Writer, k Key, files []File) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, f := range files {
		if !validName(f.Name) {
			return fmt.Errorf("backup: bad file name %q", f.Name)
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.Name, Mode: f.Mode, Size: int64(len(f.Data)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	aead, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		return err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	out := append([]byte(Magic), nonce...)
	out = aead.Seal(out, nonce, buf.Bytes(), []byte(Magic))
	_, err = w.Write(out)
	return err
}

// Open reads a sealed backup.
func Open(r io.Reader, k Key) ([]File, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrNotBackup, MaxSize)
	}
	if !bytes.HasPrefix(b, []byte(Magic)) {
		return nil, ErrNotBackup
	}
	aead, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		return nil, err
	}
	b = b[len(Magic):]
	if len(b) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: truncated", ErrNotBackup)
	}
	plain, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(Magic))
	if err != nil {
		return nil, ErrWrongKey
	}
	var files []File
	tr := tar.NewReader(bytes.NewReader(plain))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		if h.Typeflag != tar.TypeReg || !validName(h.Name) {
			return nil, fmt.Errorf("backup: unexpected entry %q", h.Name)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		files = append(files, File{Name: h.Name, Mode: h.Mode, Data: data})
	}
}

// validName accepts relative, clean, slash-separated names: nothing that
// would write outside the directory restored into.
func validName(n string) bool {
	if n == "" || strings.HasPrefix(n, "/") || strings.Contains(n, "\\") {
		return false
	}
	for _, part := range strings.Split(n, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

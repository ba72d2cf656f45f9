package backup

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	k, _ := NewKey()
	files := []File{{Name: "state/cluster.json", Mode: 0o644, Data: []byte(`{"name":"demo"}`)}, {Name: "etcd.db", Mode: 0o600, Data: bytes.Repeat([]byte{7}, 100000)}}
	var buf bytes.Buffer
	if err := Seal(&buf, k, files); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("demo")) {
		t.Fatal("the backup shows its content")
	}
	got, err := Open(bytes.NewReader(buf.Bytes()), k)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "state/cluster.json" || !bytes.Equal(got[1].Data, files[1].Data) || got[1].Mode != 0o600 {
		t.Fatalf("opened %d files: %+v", len(got), got[0])
	}
	other, _ := NewKey()
	if _, err := Open(bytes.NewReader(buf.Bytes()), other); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("other key: %v", err)
	}
	damaged := bytes.Clone(buf.Bytes())
	damaged[len(damaged)-3] ^= 1
	if _, err := Open(bytes.NewReader(damaged), k); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("damaged: %v", err)
	}
	if _, err := Open(bytes.NewReader([]byte("hello")), k); !errors.Is(err, ErrNotBackup) {
		t.Fatalf("not a backup: %v", err)
	}
	if err := Seal(&buf, k, []File{{Name: "../etc/passwd"}}); err == nil {
		t.Fatal("a name outside the directory sealed")
	}
	s := k.String()
	if k2, err := ParseKey(s + "\n"); err != nil || k2 != k {
		t.Fatalf("key round trip: %v", err)
	}
	if _, err := ParseKey("abc"); err == nil {
		t.Fatal("short key accepted")
	}
}

// FuzzOpen: whatever the bytes, Open fails cleanly or returns files with
// safe names.
func FuzzOpen(f *testing.F) {
	k := Key{1}
	var buf bytes.Buffer
	Seal(&buf, k, []File{{Name: "a/b", Data: []byte("x")}})
	f.Add(buf.Bytes())
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		files, err := Open(bytes.NewReader(b), k)
		if err != nil {
			return
		}
		for _, fl := range files {
			if !validName(fl.Name) {
				t.Fatalf("unsafe name %q", fl.Name)
			}
		}
	})
}

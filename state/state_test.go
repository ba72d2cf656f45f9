package state

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestWriteReadAtomic(t *testing.T) {
	d := Dir(t.TempDir())
	if err := d.Write("x.json", map[string]int{"a": 1}, 0o600); err != nil {
		t.Fatal(err)
	}
	var v map[string]int
	if err := d.Read("x.json", &v); err != nil || v["a"] != 1 {
		t.Fatalf("read back: %v %v", v, err)
	}
	st, _ := os.Stat(d.Path("x.json"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	entries, _ := os.ReadDir(string(d))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestReadCorruptAndMissing(t *testing.T) {
	d := Dir(t.TempDir())
	if err := d.Read("none.json", new(int)); !errors.Is(err, ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
	os.WriteFile(d.Path("bad.json"), []byte("{\"a\":"), 0o600)
	err := d.Read("bad.json", new(map[string]int))
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt: %v", err)
	}
	if b, _ := os.ReadFile(d.Path("bad.json")); string(b) != "{\"a\":" {
		t.Fatal("corrupt file changed")
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The report counts the focused tests only: passed, failed, skipped by the
// suite, and skipped because they cannot run in the lab, with the reason.
func TestReadJUnit(t *testing.T) {
	defer func(kept []struct{ test, reason string }) { notHere = kept }(notHere)
	notHere = []struct{ test, reason string }{{"a read only busybox container", "not in this lab"}}
	ro := "[sig-node] Kubelet " + notHere[0].test + " [LinuxOnly] [Conformance]"
	xml := `<testsuites><testsuite>
<testcase name="[sig-network] DNS works [Conformance]" status="passed"></testcase>
<testcase name="[sig-network] HostPort works [Conformance]" status="failed"><failure message="no answer"></failure></testcase>
<testcase name="[sig-apps] Job is slow [Slow] [Conformance]" status="skipped"><skipped message="skip"></skipped></testcase>
<testcase name="[sig-node] needs a GPU [Conformance]" status="skipped"><skipped message="no GPU"></skipped></testcase>
<testcase name="` + ro + `" status="skipped"><skipped message="skip"></skipped></testcase>
<testcase name="[sig-storage] outside the focus" status="skipped"></testcase>
</testsuite></testsuites>`
	path := filepath.Join(t.TempDir(), "junit.xml")
	if err := os.WriteFile(path, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := readJUnit(path, conformanceFocus, conformanceSkip)
	if err != nil {
		t.Fatal(err)
	}
	if r.focused != 4 || len(r.passed) != 1 || len(r.failed) != 1 || len(r.skipped) != 1 || len(r.notHere) != 1 {
		t.Fatalf("focused %d, passed %d, failed %d, skipped %d, not here %d; want 4, 1, 1, 1, 1",
			r.focused, len(r.passed), len(r.failed), len(r.skipped), len(r.notHere))
	}
	md := r.markdown(conformanceRun{date: time.Now(), focus: conformanceFocus, skip: conformanceSkip})
	for _, want := range []string{"| 4 | 1 (50.0 % of those run) | 1 | 2 (50.0 % of the focus) |", "no answer", "no GPU", notHere[0].reason} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
	if s := skipNotHere(""); s != `a read only busybox container` {
		t.Errorf("skip without a user skip: %q", s)
	}
}

// Each kind of run writes between its own markers, and leaves the others.
func TestWriteResults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "conformance.md")
	b1, e1 := resultsMarkers("make conformance")
	b2, e2 := resultsMarkers("make conformance-full")
	doc := "# C\n" + b1 + "\nold\n" + e1 + "\ntext\n" + b2 + "\nold full\n" + e2 + "\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeResults(path, "make conformance-full", "new full"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if want := "# C\n" + b1 + "\nold\n" + e1 + "\ntext\n" + b2 + "\nnew full\n" + e2 + "\n"; string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if err := writeResults(path, "skip x", "s"); err == nil {
		t.Error("no error for a kind without markers")
	}
}

func TestRunKind(t *testing.T) {
	for skip, want := range map[string]string{
		conformanceSkip: "make conformance",
		"":              "make conformance-full",
		`\[Slow\]`:      `skip \[Slow\]`,
	} {
		if got := runKind(skip); got != want {
			t.Errorf("runKind(%q) = %q, want %q", skip, got, want)
		}
	}
}

package main

import (
	"encoding/xml"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// junitCase is a test case of the suite's JUnit report (ginkgo's).
type junitCase struct {
	Name    string  `xml:"name,attr"`
	Status  string  `xml:"status,attr"`
	Time    float64 `xml:"time,attr"`
	Skipped *struct {
		Message string `xml:"message,attr"`
	} `xml:"skipped"`
	Failure *struct {
		Message string `xml:"message,attr"`
	} `xml:"failure"`
	Error *struct {
		Message string `xml:"message,attr"`
	} `xml:"error"`
}

type junitReport struct {
	Suites []struct {
		Cases []junitCase `xml:"testcase"`
	} `xml:"testsuite"`
}

// conformanceResult is the run's tests within the focus (the report lists
// every test of the suite, those left out by the focus as skipped).
type conformanceResult struct {
	passed, failed []junitCase
	skipped        []junitCase // within the focus, skipped by the test itself
	notHere        []notHereCase
	focused        int
}

// notHereCase is a focused test skipped because it cannot run in the lab.
type notHereCase struct{ name, reason string }

func (r *conformanceResult) ran() int { return len(r.passed) + len(r.failed) }

func readJUnit(path, focus, skip string) (*conformanceResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rep junitReport
	if err := xml.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	fre, err := regexp.Compile(focus)
	if err != nil {
		return nil, err
	}
	var sre *regexp.Regexp
	if skip != "" {
		if sre, err = regexp.Compile(skip); err != nil {
			return nil, err
		}
	}
	r := &conformanceResult{}
	for _, s := range rep.Suites {
		for _, c := range s.Cases {
			if !fre.MatchString(c.Name) || sre != nil && sre.MatchString(c.Name) {
				continue
			}
			r.focused++
			if i := slices.IndexFunc(notHere, func(n struct{ test, reason string }) bool {
				return strings.Contains(c.Name, n.test)
			}); i >= 0 {
				r.notHere = append(r.notHere, notHereCase{c.Name, notHere[i].reason})
				continue
			}
			switch {
			case c.Failure != nil || c.Error != nil || c.Status == "failed" || c.Status == "panicked" || c.Status == "timedout":
				r.failed = append(r.failed, c)
			case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
				r.skipped = append(r.skipped, c)
			default:
				r.passed = append(r.passed, c)
			}
		}
	}
	if r.focused == 0 {
		return nil, fmt.Errorf("%s: no test within the focus", path)
	}
	return r, nil
}

type conformanceRun struct {
	date        time.Time
	wall        time.Duration
	peak        float64
	perNode     map[string]float64
	procs       int
	focus, skip string
	load        string
}

// markdown is the results section of docs/conformance.md.
func (r *conformanceResult) markdown(run conformanceRun) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s UTC: focus `%s`, skip `%s`, %d tests at once; wall time %s; "+
		"peak memory of the cluster (the three nodes' hepto, containerd and shims, RSS summed) %.0f MB",
		run.date.Format("2006-01-02 15:04"), run.focus, run.skip, run.procs, run.wall.Round(time.Second), run.peak)
	var nodes []string
	for n, v := range run.perNode {
		nodes = append(nodes, fmt.Sprintf("%s %.0f", n, v))
	}
	slices.Sort(nodes)
	fmt.Fprintf(&b, " (per node, at its own peak: %s MB); load average at the end %s.\n\n", strings.Join(nodes, ", "), run.load)
	pct := func(n int) string { return fmt.Sprintf("%.1f %%", 100*float64(n)/float64(r.focused)) }
	fmt.Fprintf(&b, "| tests in the focus | passed | failed | skipped |\n| ---: | ---: | ---: | ---: |\n")
	skipped := len(r.skipped) + len(r.notHere)
	fmt.Fprintf(&b, "| %d | %d (%s of those run) | %d | %d (%s of the focus) |\n",
		r.focused, len(r.passed), pctOf(len(r.passed), r.ran()), len(r.failed), skipped, pct(skipped))
	if len(r.failed) > 0 {
		b.WriteString("\nFailed:\n\n")
		for _, c := range r.failed {
			msg := ""
			switch {
			case c.Failure != nil:
				msg = c.Failure.Message
			case c.Error != nil:
				msg = c.Error.Message
			}
			fmt.Fprintf(&b, "- %s — %s\n", c.Name, oneLine(msg, 200))
		}
	}
	if len(r.notHere) > 0 {
		b.WriteString("\nSkipped because they cannot run in the lab (the reason):\n\n")
		for _, c := range r.notHere {
			fmt.Fprintf(&b, "- %s — %s\n", c.name, c.reason)
		}
	}
	if len(r.skipped) > 0 {
		b.WriteString("\nSkipped by the suite itself (its reason):\n\n")
		for _, c := range r.skipped {
			msg := ""
			if c.Skipped != nil {
				msg = c.Skipped.Message
			}
			fmt.Fprintf(&b, "- %s — %s\n", c.Name, oneLine(msg, 200))
		}
	}
	return b.String()
}

func pctOf(n, of int) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f %%", 100*float64(n)/float64(of))
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// Results go between markers of the document, one pair per kind of run:
// "<!-- conformance results (KIND): begin -->" and "… end -->".
func resultsMarkers(kind string) (begin, end string) {
	return "<!-- conformance results (" + kind + "): begin -->", "<!-- conformance results (" + kind + "): end -->"
}

// writeResults puts summary between the document's markers of kind.
func writeResults(path, kind, summary string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	begin, end := resultsMarkers(kind)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s lacks the markers %s and %s", path, begin, end)
	}
	s = s[:i+len(begin)] + "\n" + summary + "\n" + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}

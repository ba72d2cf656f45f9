package lab

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// run runs argv to completion, in namespace ns unless ns is empty. Its error
// carries the command and its output.
func (l *Lab) run(ctx context.Context, ns string, argv ...string) (string, error) {
	return l.runInput(ctx, ns, "", argv...)
}

func (l *Lab) runInput(ctx context.Context, ns, stdin string, argv ...string) (string, error) {
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	return runCmd(ctx, l.log, stdin, argv...)
}

// runCmd runs argv with stdin, logging it at debug level when log is set.
func runCmd(ctx context.Context, log *slog.Logger, stdin string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	out, err := c.CombinedOutput()
	line := strings.Join(argv, " ")
	if stdin != "" {
		line += " <<< " + strings.ReplaceAll(strings.TrimSpace(stdin), "\n", "; ")
	}
	if log != nil {
		log.Debug("run", "cmd", line, "err", err)
	}
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", line, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// ip runs `ip` commands, one a line, in namespace ns with a single process.
func (l *Lab) ip(ns string, lines ...string) error {
	_, err := l.runInput(l.ctx, "", strings.Join(lines, "\n")+"\n", "ip", "-n", ns, "-batch", "-")
	return err
}

// sysctl sets kernel parameters of namespace ns; keys are paths under
// /proc/sys. Parameters of absent modules (br_netfilter) are skipped.
func (l *Lab) sysctl(ns string, kv map[string]string) error {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return inNetns(ns, func() error {
		for _, k := range keys {
			err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(kv[k]), 0o644)
			l.log.Debug("sysctl", "netns", ns, "key", k, "value", kv[k], "err", err)
			if os.IsNotExist(err) && strings.HasPrefix(k, "net/bridge/") {
				continue
			}
			if err != nil {
				return fmt.Errorf("netns %s: sysctl %s=%s: %w", ns, k, kv[k], err)
			}
		}
		return nil
	})
}

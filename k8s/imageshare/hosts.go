package imageshare

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteHosts writes containerd's registry configuration (its
// config_path) into out: the user's, from user (HOST/hosts.toml and the
// files they name), with mirror first among each registry's hosts, and
// _default for every other registry. Content is fetched by digest from
// the mirror first, the registry (or the user's mirrors) after; tags are
// resolved as before. With mirror "", the user's configuration alone.
func WriteHosts(user, out, mirror string) error {
	tmp := out + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(user)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	section := ""
	if mirror != "" {
		section = fmt.Sprintf("[host.%q]\n  capabilities = [\"pull\"]\n\n", mirror)
	}
	wroteDefault := false
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		src, dst := filepath.Join(user, e.Name()), filepath.Join(tmp, e.Name())
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		files, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		hosts := []byte{}
		for _, f := range files {
			if f.IsDir() {
				continue
			}
			p := filepath.Join(src, f.Name())
			if f.Name() == "hosts.toml" {
				if hosts, err = os.ReadFile(p); err != nil {
					return err
				}
				continue
			}
			// Certificates and keys, named relative to the directory.
			if err := os.Symlink(p, filepath.Join(dst, f.Name())); err != nil {
				return err
			}
		}
		if section != "" {
			hosts = withMirror(hosts, section)
		}
		if err := os.WriteFile(filepath.Join(dst, "hosts.toml"), hosts, 0o644); err != nil {
			return err
		}
		wroteDefault = wroteDefault || e.Name() == "_default"
	}
	if !wroteDefault && section != "" {
		if err := os.MkdirAll(filepath.Join(tmp, "_default"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmp, "_default", "hosts.toml"), []byte(section), 0o644); err != nil {
			return err
		}
	}
	// Swapped whole: containerd reads the directory on each pull.
	old := out + ".old"
	os.RemoveAll(old)
	if err := os.Rename(out, old); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// withMirror puts section before the first table of a hosts.toml, after
// its top-level keys (server, capabilities…): hosts are tried in the order
// they appear, the server last.
func withMirror(hosts []byte, section string) []byte {
	lines := bytes.SplitAfter(hosts, []byte("\n"))
	var out bytes.Buffer
	placed := false
	for _, l := range lines {
		if !placed && strings.HasPrefix(strings.TrimSpace(string(l)), "[") {
			out.WriteString(section)
			placed = true
		}
		out.Write(l)
	}
	if !placed {
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			out.WriteString("\n")
		}
		out.WriteString("\n" + section)
	}
	return out.Bytes()
}

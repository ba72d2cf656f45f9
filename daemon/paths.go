package daemon

import (
	"errors"
	"net/netip"
	"sync"

	"github.com/hepto-net/hepto/state"
)

// pathBook is paths.json: what lets a restarted node come back to its
// peers without an anchor. Its UDP port, so that the peers' boxes, which
// let in what comes from the endpoint they sent to, still let it in; and
// the endpoints of its direct paths, to try them again at once.
type pathBook struct {
	st state.Dir
	mu sync.Mutex // serialises writes

	Port   uint16                    `json:"port,omitempty"`
	Direct map[string]netip.AddrPort `json:"direct,omitempty"` // node name → endpoint
}

// loadPaths reads paths.json; a missing file is an empty book, a corrupt
// one is an error (the node stops, the file is left as it is).
func loadPaths(st state.Dir) (*pathBook, error) {
	b := &pathBook{st: st}
	if err := st.Read(state.PathsFile, b); err != nil && !errors.Is(err, state.ErrNotExist) {
		return nil, err
	}
	return b, nil
}

func (b *pathBook) setPort(p uint16) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Port == p {
		return nil
	}
	b.Port = p
	return b.st.Write(state.PathsFile, b, 0o600)
}

func (b *pathBook) setDirect(eps map[string]netip.AddrPort) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.Direct = eps
	return b.st.Write(state.PathsFile, b, 0o600)
}

// direct is a copy of the saved endpoints.
func (b *pathBook) direct() map[string]netip.AddrPort {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]netip.AddrPort, len(b.Direct))
	for k, v := range b.Direct {
		out[k] = v
	}
	return out
}

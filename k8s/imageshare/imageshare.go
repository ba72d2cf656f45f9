// Package imageshare shares the images a node holds with the other nodes
// of its cluster, so that an image crosses a home's uplink once: each node
// serves the content of its containerd store by digest to members (over
// the control protocol: only members' hepto may ask), and runs, on its
// loopback, a mirror that containerd asks first for every registry. The
// mirror asks the nodes of its own home, then the others; when none holds
// the content, containerd goes on to the registry as before. Only content
// named by its digest is shared (layers, configs, manifests by digest),
// which containerd verifies; tags are resolved by the registry.
package imageshare

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hepto-net/hepto/control"
)

// Port is the mirror's port on the node's loopback.
const Port = 9655

// askTimeout bounds the question to a group of nodes: who holds this?
const askTimeout = 2 * time.Second

// Peer is a node to ask, Home when it is in this node's home.
type Peer struct {
	Name   string
	Addr   netip.Addr
	Home   bool
	Anchor bool
}

// before orders the nodes that may go to the registry for content several
// want at once: anchors (in a datacenter, uplinks to spare) first, then by
// name. A node waits only for nodes before it: no two wait for each other.
func before(a, b Peer) bool {
	if a.Anchor != b.Anchor {
		return a.Anchor
	}
	return a.Name < b.Name
}

// Options configure a Share.
type Options struct {
	Self    Peer          // this node (Name, Anchor)
	Content string        // containerd's content store (io.containerd.content.v1.content)
	Peers   func() []Peer // the other Kubernetes nodes
	Client  *control.Client
	Log     *slog.Logger
}

// Share serves this node's content and runs the mirror.
type Share struct {
	o Options
	// claims are the digests this node is getting: asking for them, or
	// gone to the registry for them (the mirror found them nowhere);
	// others wait for it rather than go too.
	mu     sync.Mutex
	claims map[string]time.Time
	asking map[string]int
	// Bytes served to other nodes, fetched from them, and asked for but
	// found nowhere (gone to the registry).
	Served, Fetched, Missed atomic.Int64
}

// New makes a Share.
func New(o Options) *Share {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Share{o: o, claims: map[string]time.Time{}, asking: map[string]int{}}
}

// Timings of content being pulled elsewhere: a claim lasts until
// containerd's download shows in its store; a node waits for another's
// download at most pullWait, asking every pollEvery.
const (
	claimFor  = 30 * time.Second
	pullWait  = 3 * time.Minute
	pollEvery = time.Second
)

// pullingHeader marks, in an answer to HEAD, content the node does not
// hold yet but is downloading.
const pullingHeader = "Hepto-Content"

// pulling tells whether this node is getting digest: its mirror is
// asking for it, or it is on its way (from the registry or another node)
// and containerd's download is not over.
func (s *Share) pulling(digest string) bool {
	s.mu.Lock()
	t, claimed := s.claims[digest]
	asking := s.asking[digest] > 0
	s.mu.Unlock()
	if asking || (claimed && time.Since(t) < claimFor) {
		return true
	}
	if !claimed {
		return false
	}
	refs, _ := filepath.Glob(filepath.Join(s.o.Content, "ingest", "*", "ref"))
	for _, r := range refs {
		if b, err := os.ReadFile(r); err == nil && strings.HasSuffix(strings.TrimSpace(string(b)), digest) {
			return true
		}
	}
	s.mu.Lock()
	delete(s.claims, digest)
	s.mu.Unlock()
	return false
}

func (s *Share) setAsking(digest string, d int) {
	s.mu.Lock()
	s.asking[digest] += d
	if s.asking[digest] <= 0 {
		delete(s.asking, digest)
	}
	s.mu.Unlock()
}

func (s *Share) claim(digest string) {
	s.mu.Lock()
	s.claims[digest] = time.Now()
	s.mu.Unlock()
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// open is the content of digest in this node's store.
func (s *Share) open(digest string) (*os.File, error) {
	if !digestRE.MatchString(digest) {
		return nil, errors.New("not a sha256 digest")
	}
	return os.Open(filepath.Join(s.o.Content, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:")))
}

// ServeBlob serves control.PathBlobs to members.
func (s *Share) ServeBlob(w http.ResponseWriter, r *http.Request) {
	if _, err := control.RequireCaller(r, "image content"); err != nil {
		control.WriteError(w, err)
		return
	}
	digest := strings.TrimPrefix(r.URL.Path, control.PathBlobs)
	f, err := s.open(digest)
	if err != nil {
		if r.Method == http.MethodHead && digestRE.MatchString(digest) && s.pulling(digest) {
			w.Header().Set(pullingHeader, "pulling")
			return
		}
		http.Error(w, "no such content", http.StatusNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "no such content", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.Method == http.MethodHead {
		return
	}
	n, _ := io.Copy(w, f)
	s.Served.Add(n)
}

// mirrorPathRE is a registry's content by digest: /v2/NAME/blobs/DIGEST
// or /v2/NAME/manifests/DIGEST.
var mirrorPathRE = regexp.MustCompile(`^/v2/.+/(blobs|manifests)/(sha256:[0-9a-f]{64})$`)

// Run serves the mirror on the loopback until ctx ends.
func (s *Share) Run(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(Port)))
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.mirror), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// mirror answers containerd: the content from a node that holds it, or
// 404 (containerd asks the next host).
func (s *Share) mirror(w http.ResponseWriter, r *http.Request) {
	m := mirrorPathRE.FindStringSubmatch(r.URL.Path)
	if m == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.Error(w, "only content by digest", http.StatusNotFound)
		return
	}
	kind, digest := m[1], m[2]
	peer, size, ok := s.find(r.Context(), digest)
	if !ok {
		// This node's containerd goes to the registry: the others wait for
		// it rather than go too.
		s.claim(digest)
		s.Missed.Add(1)
		http.Error(w, "no node holds it", http.StatusNotFound)
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Docker-Content-Digest", digest)
		return
	}
	// Getting it: the nodes after this one wait for it, until containerd
	// has it in its store.
	s.claim(digest)
	resp, err := s.o.Client.Open(r.Context(), http.MethodGet, peer.Addr, control.PathBlobs+digest)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Docker-Content-Digest", digest)
	if kind == "manifests" {
		w.Header().Set("Content-Type", mediaType(resp, size))
	}
	n, _ := io.Copy(w, resp.Body)
	s.Fetched.Add(n)
	s.o.Log.Debug("image content from a node", "digest", digest, "node", peer.Name, "home", peer.Home, "bytes", n)
}

// find asks the nodes of this home, then the others, which holds digest:
// the first to say it does, and the size. A node before this one (before)
// that is getting it too is waited for, so that content deployed on every
// node at once crosses each uplink once, and the registry's once.
func (s *Share) find(ctx context.Context, digest string) (Peer, int64, bool) {
	s.setAsking(digest, 1)
	defer s.setAsking(digest, -1)
	var home, away []Peer
	for _, p := range s.o.Peers() {
		if p.Home {
			home = append(home, p)
		} else {
			away = append(away, p)
		}
	}
	for attempt := range 2 {
		for _, group := range [][]Peer{home, away} {
			a := s.ask(ctx, group, digest)
			if a.pulling {
				a = s.await(ctx, a.p, digest)
			}
			if a.holds {
				return a.p, a.size, true
			}
		}
		if attempt == 0 {
			// Others asking at the same moment show by now.
			select {
			case <-ctx.Done():
				return Peer{}, 0, false
			case <-time.After(settle):
			}
		}
	}
	return Peer{}, 0, false
}

// settle is how long a node that found the content nowhere waits before
// asking again, and going to the registry.
const settle = 500 * time.Millisecond

// answer is a node's answer: it holds the content (of size), or is
// downloading it.
type answer struct {
	p       Peer
	size    int64
	holds   bool
	pulling bool
}

// ask asks a group of nodes at once: a node that holds the content if
// there is one, else one that is downloading it.
func (s *Share) ask(ctx context.Context, group []Peer, digest string) answer {
	ctx, cancel := context.WithTimeout(ctx, askTimeout)
	defer cancel()
	answers := make(chan answer, len(group))
	for _, p := range group {
		go func() { answers <- s.head(ctx, p, digest) }()
	}
	var pulling answer
	for range group {
		a := <-answers
		if a.holds {
			return a
		}
		if a.pulling && before(a.p, s.o.Self) && (!pulling.pulling || before(a.p, pulling.p)) {
			pulling = a
		}
	}
	return pulling
}

// head asks one node.
func (s *Share) head(ctx context.Context, p Peer, digest string) answer {
	resp, err := s.o.Client.Open(ctx, http.MethodHead, p.Addr, control.PathBlobs+digest)
	if err != nil {
		return answer{p: p}
	}
	resp.Body.Close()
	if resp.Header.Get(pullingHeader) != "" {
		return answer{p: p, pulling: true}
	}
	return answer{p: p, size: resp.ContentLength, holds: resp.ContentLength >= 0}
}

// await waits for p's download of digest to end.
func (s *Share) await(ctx context.Context, p Peer, digest string) answer {
	deadline := time.Now().Add(pullWait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return answer{}
		case <-time.After(pollEvery):
		}
		actx, cancel := context.WithTimeout(ctx, askTimeout)
		a := s.head(actx, p, digest)
		cancel()
		if !a.pulling {
			return a
		}
	}
	return answer{}
}

// mediaType is a manifest's media type, which containerd wants as its
// Content-Type: read from the manifest itself (small).
func mediaType(resp *http.Response, size int64) string {
	const fallback = "application/vnd.oci.image.manifest.v1+json"
	if size > 4<<20 {
		return fallback
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, size))
	if err != nil {
		return fallback
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	var v struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(b, &v) != nil || v.MediaType == "" {
		return fallback
	}
	return v.MediaType
}

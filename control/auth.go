package control

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hepto-net/hepto/key"
	"github.com/hepto-net/hepto/membership"
)

// Calls between members are signed by the calling node's hepto: the
// overlay address a call comes from says which machine sent it, not which
// process; a local user, a pod on the host network or a user of a
// netstack node's SOCKS5 proxy sends from the same address. The
// signature is a MAC under the two nodes' static WireGuard DH secret
// (MAC), which only their hepto, holding the private keys, can make.
const (
	// HeaderSignature carries "TIME.MAC": unix seconds and the base64 MAC
	// of the method, the request URI, the time and the body's SHA-256.
	HeaderSignature = "Hepto-Signature"
	// HeaderBodyHash is the hex SHA-256 of the body, checked as it is read.
	HeaderBodyHash = "Hepto-Body-Sha256"
	macRequest     = "hepto/v1/request"
)

// Identity is a node's key and the members it knows, to sign its calls
// and to know who signed a call to it.
type Identity struct {
	Key key.Private
	// Member is the member at an overlay address.
	Member func(netip.Addr) (membership.Node, bool)
}

// signed is what the MAC of a request covers.
func signed(method, uri string, t int64, bodyHash string) []byte {
	return []byte(method + "\n" + uri + "\n" + strconv.FormatInt(t, 10) + "\n" + bodyHash)
}

// Sign adds the signature of a call to peer, body being its whole body.
func (id *Identity) Sign(req *http.Request, peer key.Public, body []byte) error {
	sum := sha256.Sum256(body)
	bodyHash := hex.EncodeToString(sum[:])
	t := time.Now().Unix()
	mac, err := MAC(id.Key, peer, macRequest, signed(req.Method, req.URL.RequestURI(), t, bodyHash))
	if err != nil {
		return err
	}
	req.Header.Set(HeaderBodyHash, bodyHash)
	req.Header.Set(HeaderSignature, strconv.FormatInt(t, 10)+"."+base64.RawURLEncoding.EncodeToString(mac))
	return nil
}

type (
	callerKey  struct{}
	refusalKey struct{}
)

// Caller is the member whose hepto signed r; false for a call unsigned or
// signed by another process than a member's hepto.
func Caller(r *http.Request) (membership.Node, bool) {
	n, ok := r.Context().Value(callerKey{}).(membership.Node)
	return n, ok
}

// RequireCaller is Caller, or the refusal to send when there is none,
// saying why.
func RequireCaller(r *http.Request, what string) (membership.Node, error) {
	if n, ok := Caller(r); ok {
		return n, nil
	}
	why, _ := r.Context().Value(refusalKey{}).(string)
	if why == "" {
		why = "the call is not signed"
	}
	return membership.Node{}, Refused("%s: only for a member's hepto (%s)", what, why)
}

// Handler passes the calls to h with their Caller, when their signature
// is right; a call without one still goes through (joining nodes, removed
// nodes learning so), and routes that need a member's hepto refuse it.
func (id *Identity) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, id.authenticate(r))
	})
}

// ErrBodyHash is a body that is not the one signed.
var ErrBodyHash = errors.New("the body is not the one signed")

// authenticate returns r with its caller when r carries a valid
// signature, else with why not.
func (id *Identity) authenticate(r *http.Request) *http.Request {
	n, why := id.verify(r)
	if why != "" {
		return r.WithContext(context.WithValue(r.Context(), refusalKey{}, why))
	}
	want, _ := hex.DecodeString(r.Header.Get(HeaderBodyHash))
	r = r.WithContext(context.WithValue(r.Context(), callerKey{}, n))
	r.Body = &hashedBody{r: r.Body, h: sha256.New(), want: want}
	return r
}

// verify checks r's signature: the member that made it, or why not.
func (id *Identity) verify(r *http.Request) (membership.Node, string) {
	from := RemoteAddr(r)
	sig := r.Header.Get(HeaderSignature)
	if sig == "" {
		return membership.Node{}, "the call is not signed"
	}
	ts, macB64, ok := strings.Cut(sig, ".")
	t, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil {
		return membership.Node{}, "malformed " + HeaderSignature
	}
	mac, err := base64.RawURLEncoding.DecodeString(macB64)
	if err != nil {
		return membership.Node{}, "malformed " + HeaderSignature
	}
	bodyHash := r.Header.Get(HeaderBodyHash)
	if b, err := hex.DecodeString(bodyHash); err != nil || len(b) != sha256.Size {
		return membership.Node{}, "malformed " + HeaderBodyHash
	}
	n, known := id.Member(from)
	if !known {
		return membership.Node{}, fmt.Sprintf("%s is no member's address", from)
	}
	if !Fresh(t, time.Now()) {
		return membership.Node{}, fmt.Sprintf("signed at %s: more than %s from this node's clock", time.Unix(t, 0).UTC().Format(time.RFC3339), MACWindow)
	}
	if !CheckMAC(id.Key, n.PublicKey, macRequest, signed(r.Method, r.URL.RequestURI(), t, bodyHash), mac) {
		return membership.Node{}, fmt.Sprintf("the call from %s is not signed by %s's key", from, n.Name)
	}
	return n, ""
}

// hashedBody fails the read that ends a body other than the one signed.
type hashedBody struct {
	r    io.ReadCloser
	h    hash.Hash
	want []byte
}

func (b *hashedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.h.Write(p[:n])
	if err == io.EOF && !bytes.Equal(b.h.Sum(nil), b.want) {
		return n, ErrBodyHash
	}
	return n, err
}

func (b *hashedBody) Close() error { return b.r.Close() }

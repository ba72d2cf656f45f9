package control

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// URL is the address of path on a node's control port.
func URL(node netip.Addr, path string) string {
	return "http://" + netip.AddrPortFrom(node, Port).String() + path
}

// Client calls other nodes' control ports. It keeps no idle connection, so
// an idle link carries nothing but WireGuard keepalives.
type Client struct {
	http *http.Client
	// Identity, when set, signs the calls to members (Caller).
	Identity *Identity
}

// NewClient returns a client that dials with dial (through the overlay).
func NewClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *Client {
	return &Client{http: &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}}
}

// Post sends in to path on node and decodes a 200 reply into out (nil: no
// reply expected). A refusal is an *Error.
func (c *Client) Post(ctx context.Context, node netip.Addr, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, http.MethodPost, node, path, b, out)
	return err
}

// PostBytes sends raw bytes to path on node.
func (c *Client) PostBytes(ctx context.Context, node netip.Addr, path string, b []byte) error {
	_, err := c.do(ctx, http.MethodPost, node, path, b, nil)
	return err
}

// Get fetches path (with its query) from node into out; it reports false
// when the node had nothing to send (204).
func (c *Client) Get(ctx context.Context, node netip.Addr, path string, out any) (bool, error) {
	return c.do(ctx, http.MethodGet, node, path, nil, out)
}

// Open sends a request without a body (GET, HEAD) to path on node and
// returns the 200 reply, for the caller to read and close: a stream, with
// no time limit but ctx's. Another status is an error.
func (c *Client) Open(ctx context.Context, method string, node netip.Addr, path string) (*http.Response, error) {
	req, err := c.request(ctx, method, node, path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	var e ErrorReply
	Decode(resp.Body, &e)
	return nil, replyError(resp.StatusCode, e, resp.Status)
}

// request is a call to path on node, signed when node is a member.
func (c *Client) request(ctx context.Context, method string, node netip.Addr, path string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, URL(node, path), r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if id := c.Identity; id != nil {
		if m, ok := id.Member(node); ok {
			if err := id.Sign(req, m.PublicKey, body); err != nil {
				return nil, err
			}
		}
	}
	return req, nil
}

func (c *Client) do(ctx context.Context, method string, node netip.Addr, path string, body []byte, out any) (bool, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	req, err := c.request(ctx, method, node, path, body)
	if err != nil {
		return false, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNoContent:
		return false, nil
	case resp.StatusCode == http.StatusOK && out != nil:
		return true, Decode(resp.Body, out)
	case resp.StatusCode == http.StatusOK:
		return true, nil
	}
	var e ErrorReply
	Decode(resp.Body, &e)
	return false, replyError(resp.StatusCode, e, resp.Status)
}

package catalogrpc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"sync"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// ErrNoServer is returned by Dial when nothing answers on the socket.
var ErrNoServer = fmt.Errorf("catalogrpc: no server: %w", fs.ErrNotExist)

// Client is a catalog.Catalog served by a Server. It is safe for concurrent
// use: each call borrows a connection from a pool and dials a new one when
// none is idle.
type Client struct {
	path  string
	hello Hello

	mu     sync.Mutex // guards idle, closed, refuse
	idle   []*conn
	closed bool
	refuse error // the answer to every write (RefuseWrites); nil: none
}

// RefuseWrites makes every later call that would change the catalog
// return err without reaching the server; reads still go. A client uses it
// when the server is another build, which may drop what it does not know
// of a write (a new argument) without a word.
func (c *Client) RefuseWrites(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.refuse = err
}

type conn struct {
	c   net.Conn
	dec *json.Decoder
	bw  *bufio.Writer
	enc *json.Encoder
}

// Dial connects to the server on the Unix socket at path. With id != "",
// a server with another identity is refused. A missing socket, or one no
// process answers on, is ErrNoServer.
func Dial(ctx context.Context, path, id string) (*Client, error) {
	c := &Client{path: path}
	if err := c.call(ctx, mHello, nil, &c.hello); err != nil {
		c.Close()
		return nil, err
	}
	if id != "" && c.hello.ID != id {
		c.Close()
		return nil, fmt.Errorf("catalogrpc: %s serves %q, not %q", path, c.hello.ID, id)
	}
	return c, nil
}

// Hello is what the server said about itself when dialled.
func (c *Client) Hello() Hello { return c.hello }

func (c *Client) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	nc, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) && ne.Op == "dial" && ctx.Err() == nil {
			return nil, fmt.Errorf("%w at %s: %v", ErrNoServer, c.path, err)
		}
		return nil, err
	}
	bw := bufio.NewWriter(nc)
	return &conn{c: nc, dec: json.NewDecoder(bufio.NewReader(nc)), bw: bw, enc: json.NewEncoder(bw)}, nil
}

func (c *Client) get(ctx context.Context) (*conn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errors.New("catalogrpc: client is closed")
	}
	if n := len(c.idle); n > 0 {
		cn := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return cn, nil
	}
	c.mu.Unlock()
	return c.dial(ctx)
}

func (c *Client) put(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.idle) >= 8 {
		cn.c.Close()
		return
	}
	c.idle = append(c.idle, cn)
}

// call sends one request and decodes its answer into result; stream, when
// not nil, receives the versions of an Each.
func (c *Client) call(ctx context.Context, method string, args, result any, stream ...func(catalog.Version) error) (err error) {
	if writes[method] {
		c.mu.Lock()
		refuse := c.refuse
		c.mu.Unlock()
		if refuse != nil {
			return refuse
		}
	}
	req := request{M: method}
	if writes[method] {
		req.P = Protocol
	}
	if args != nil {
		if req.A, err = json.Marshal(args); err != nil {
			return err
		}
	}
	cn, err := c.get(ctx)
	if err != nil {
		return err
	}
	// A canceled ctx unblocks the socket; the connection is then dropped,
	// as its stream position is unknown.
	stop := context.AfterFunc(ctx, func() { cn.c.SetDeadline(time.Unix(1, 0)) })
	healthy := false
	defer func() {
		if !stop() || !healthy {
			cn.c.Close()
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return
		}
		c.put(cn)
	}()
	if err := cn.enc.Encode(req); err != nil {
		return c.broken(err)
	}
	if err := cn.bw.Flush(); err != nil {
		return c.broken(err)
	}
	var fnErr error
	for {
		var resp response
		if err := cn.dec.Decode(&resp); err != nil {
			return c.broken(err)
		}
		if resp.V != nil {
			if fnErr == nil && len(stream) > 0 {
				fnErr = stream[0](*resp.V)
			}
			continue
		}
		healthy = true
		if fnErr != nil {
			return fnErr
		}
		if resp.E != nil {
			return resp.E.err()
		}
		if result == nil || len(resp.R) == 0 {
			return nil
		}
		return json.Unmarshal(resp.R, result)
	}
}

func (c *Client) broken(err error) error {
	return fmt.Errorf("the lamina daemon on %s stopped answering (%v); is the mount still up? (lamina status)", c.path, err)
}

// Close closes the idle connections; calls in progress finish first.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, cn := range c.idle {
		cn.c.Close()
	}
	c.idle = nil
	return nil
}

// Status returns what the server's ServerOptions.Status reports.
func (c *Client) Status(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.call(ctx, mStatus, nil, &raw)
	return raw, err
}

func (c *Client) Save(ctx context.Context, vs []catalog.NewVersion) ([]catalog.Saved, error) {
	var out []catalog.Saved
	return out, c.call(ctx, mSave, vs, &out)
}

func (c *Client) ByUID(ctx context.Context, prefix string) (catalog.Version, error) {
	var v catalog.Version
	return v, c.call(ctx, mByUID, prefix, &v)
}

func (c *Client) ByKey(ctx context.Context, key string, n int) (catalog.Version, error) {
	var v catalog.Version
	return v, c.call(ctx, mByKey, keyArgs{Key: key, N: n}, &v)
}

func (c *Client) Versions(ctx context.Context, key string, trash bool) ([]catalog.Version, error) {
	var out []catalog.Version
	return out, c.call(ctx, mVersions, keyArgs{Key: key, Trash: trash}, &out)
}

func (c *Client) List(ctx context.Context, q catalog.Query) ([]catalog.Version, error) {
	var out []catalog.Version
	return out, c.call(ctx, mList, q, &out)
}

func (c *Client) Trash(ctx context.Context, key string) (catalog.TrashEntry, error) {
	var e catalog.TrashEntry
	return e, c.call(ctx, mTrash, keyArgs{Key: key}, &e)
}

func (c *Client) Restore(ctx context.Context, key string) (catalog.TrashEntry, error) {
	var e catalog.TrashEntry
	return e, c.call(ctx, mRestore, keyArgs{Key: key}, &e)
}

func (c *Client) RestoreNode(ctx context.Context, key string) (catalog.TrashEntry, error) {
	var e catalog.TrashEntry
	return e, c.call(ctx, mRestoreNode, keyArgs{Key: key}, &e)
}

// RestoreTrashedWith is errors.ErrUnsupported from a daemon older than
// it (Protocol 9).
func (c *Client) RestoreTrashedWith(ctx context.Context, uid string) (catalog.TrashEntry, error) {
	var e catalog.TrashEntry
	return e, c.call(ctx, mRestoreWith, keyArgs{Key: uid}, &e)
}

func (c *Client) TrashList(ctx context.Context) ([]catalog.TrashEntry, error) {
	var out []catalog.TrashEntry
	return out, c.call(ctx, mTrashList, nil, &out)
}

// Cache asks the server to act on its disk cache (ServerOptions.Cache)
// and returns its report.
func (c *Client) Cache(ctx context.Context, a CacheArgs) (json.RawMessage, error) {
	var raw json.RawMessage
	err := c.call(ctx, mCache, a, &raw)
	return raw, err
}

// Snapshot asks the server to write a consistent copy of its catalog file
// to path (ServerOptions.Snapshot).
func (c *Client) Snapshot(ctx context.Context, path string) error {
	return c.call(ctx, mSnapshot, pathArgs{Path: path}, nil)
}

func (c *Client) Purge(ctx context.Context, key string) ([]catalog.Version, error) {
	var out []catalog.Version
	return out, c.call(ctx, mPurge, keyArgs{Key: key}, &out)
}

func (c *Client) PurgeTrashed(ctx context.Context, key, kind string) ([]catalog.Version, error) {
	var out []catalog.Version
	return out, c.call(ctx, mPurgeTrash, keyArgs{Key: key, Kind: kind}, &out)
}

func (c *Client) Each(ctx context.Context, fn func(catalog.Version) error) error {
	return c.call(ctx, mEach, nil, nil, fn)
}

func (c *Client) Counts(ctx context.Context) (catalog.Counts, error) {
	var n catalog.Counts
	return n, c.call(ctx, mCounts, nil, &n)
}

func (c *Client) Outbox(ctx context.Context) ([]catalog.Version, error) {
	var out []catalog.Version
	return out, c.call(ctx, mOutbox, nil, &out)
}

func (c *Client) OutboxDone(ctx context.Context, uids []string) error {
	return c.call(ctx, mOutboxDone, uids, nil)
}

func (c *Client) Children(ctx context.Context, prefix string) (catalog.Dir, error) {
	var d catalog.Dir
	return d, c.call(ctx, mChildren, prefix, &d)
}

var _ catalog.Catalog = (*Client)(nil)

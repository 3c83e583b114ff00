package s3test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy sits between a client and an S3 server on 127.0.0.1 and injects
// faults: latency, error statuses, connection resets, truncated bodies, and
// a server that goes away and comes back on the same address.
type Proxy struct {
	Addr     string // host:port the client talks to
	upstream string
	tr       *http.Transport
	sent     atomic.Int64 // bytes of answer bodies sent

	mu       sync.Mutex // guards the fields below
	srv      *http.Server
	latency  time.Duration
	rate     int     // bytes per second of answer bodies; 0: no limit
	faults   []Fault // applied to the next requests, one each
	always   Fault   // applied to every request while set
	requests int
	byMethod map[string]int
	ranges   []string // the Range header of each GET
	match    string   // faults apply only to requests whose method+path contains this
	deny     func(*http.Request) bool
}

// Fault is what the proxy does to one request.
type Fault int

const (
	None      Fault = iota
	Status500       // answer 500 Internal Error without asking the server
	Status503       // answer 503 SlowDown
	Reset           // close the connection with a TCP reset before answering
	Truncate        // forward, then cut the body in half and close
	Corrupt         // forward the request with one byte of its body changed
	Hang            // accept the request and never answer (until the client gives up)
	Stall           // forward, send half the body, then send nothing more (until the client gives up)
)

// NewProxy starts a proxy in front of srv and returns it with a Server
// that goes through it. It stops at the end of the test.
func NewProxy(t testing.TB, srv Server) (*Proxy, Server) {
	t.Helper()
	p := &Proxy{upstream: srv.Endpoint, tr: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 64}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Addr = l.Addr().String()
	p.serve(l)
	t.Cleanup(func() { p.Down(); p.tr.CloseIdleConnections() })
	via := srv
	via.Endpoint = "http://" + p.Addr
	return p, via
}

func (p *Proxy) serve(l net.Listener) {
	s := &http.Server{Handler: http.HandlerFunc(p.handle)}
	p.mu.Lock()
	p.srv = s
	p.mu.Unlock()
	go s.Serve(l)
}

// SetLatency delays every request by d.
func (p *Proxy) SetLatency(d time.Duration) { p.mu.Lock(); p.latency = d; p.mu.Unlock() }

// SetRate sends answer bodies at about bytesPerSec, in steady small
// pieces (a slow link); 0 lifts the limit.
func (p *Proxy) SetRate(bytesPerSec int) { p.mu.Lock(); p.rate = bytesPerSec; p.mu.Unlock() }

// Next queues faults for the next requests, one per request.
func (p *Proxy) Next(f ...Fault) { p.mu.Lock(); p.faults = append(p.faults, f...); p.mu.Unlock() }

// Always applies f to every request until Always(None).
func (p *Proxy) Always(f Fault) { p.mu.Lock(); p.always = f; p.mu.Unlock() }

// Only restricts faults to requests whose "METHOD path?query" contains s
// (empty: all requests).
func (p *Proxy) Only(s string) { p.mu.Lock(); p.match = s; p.mu.Unlock() }

// Ranges returns the Range headers of the GETs that reached the proxy, in
// order ("" for a whole object).
func (p *Proxy) Ranges() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges...)
}

// Sent is how many bytes of answer bodies the proxy has sent so far (a
// slow link's progress: a test reads it when a read returns).
func (p *Proxy) Sent() int64 { return p.sent.Load() }

// Requests is how many requests reached the proxy.
func (p *Proxy) Requests() int { p.mu.Lock(); defer p.mu.Unlock(); return p.requests }

// RequestsOf is how many requests with this HTTP method reached the proxy.
func (p *Proxy) RequestsOf(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byMethod[method]
}

// Down stops listening and drops every connection: the server is gone.
func (p *Proxy) Down() {
	p.mu.Lock()
	s := p.srv
	p.srv = nil
	p.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// Up listens again on the same address.
func (p *Proxy) Up() error {
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", p.Addr); err == nil {
			p.serve(l)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// DenyIf answers 403 AccessDenied, without asking the server, to the
// requests f picks, as a bucket policy limited to a prefix does; nil ends it.
func (p *Proxy) DenyIf(f func(*http.Request) bool) { p.mu.Lock(); p.deny = f; p.mu.Unlock() }

func (p *Proxy) handle(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if p.deny != nil && p.deny(r) {
		p.mu.Unlock()
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(403)
		if r.Method != http.MethodHead {
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>injected</Message></Error>`)
		}
		return
	}
	p.requests++
	if p.byMethod == nil {
		p.byMethod = map[string]int{}
	}
	p.byMethod[r.Method]++
	if r.Method == http.MethodGet {
		p.ranges = append(p.ranges, r.Header.Get("Range"))
	}
	lat := p.latency
	rate := p.rate
	f := None
	if p.match == "" || strings.Contains(r.Method+" "+r.URL.RequestURI(), p.match) {
		f = p.always
		if f == None && len(p.faults) > 0 {
			f, p.faults = p.faults[0], p.faults[1:]
		}
	}
	p.mu.Unlock()
	if lat > 0 {
		time.Sleep(lat)
	}
	switch f {
	case Status500:
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(500)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>`)
		return
	case Status503:
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(503)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`)
		return
	case Reset:
		hijackReset(w)
		return
	case Hang:
		<-r.Context().Done()
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = "http"
	out.URL.Host = strings.TrimPrefix(p.upstream, "http://")
	out.Host = r.Host // the signature covers Host
	if r.ContentLength == 0 {
		out.Body = nil
	} else if f == Corrupt {
		body, err := io.ReadAll(r.Body)
		if err != nil || len(body) == 0 {
			http.Error(w, "proxy: cannot read the body", http.StatusBadGateway)
			return
		}
		body[len(body)/2] ^= 0xff
		out.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if f == Truncate && resp.ContentLength > 1 {
		hj, ok := w.(http.Hijacker)
		if !ok {
			return
		}
		conn, bw, err := hj.Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		writeHead(bw, resp)
		io.CopyN(bw, resp.Body, resp.ContentLength/2)
		bw.Flush()
		return
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if f == Stall && resp.ContentLength > 1 {
		io.CopyN(w, resp.Body, resp.ContentLength/2)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		return
	}
	body := countingWriter{w, &p.sent}
	if rate > 0 {
		copySlowly(body, resp.Body, rate)
		return
	}
	io.Copy(body, resp.Body)
}

// countingWriter adds what it writes to n.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n.Add(int64(n))
	return n, err
}

func (c countingWriter) Flush() {
	if fl, ok := c.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// copySlowly copies r to w at about rate bytes per second, a piece every
// 50 ms.
func copySlowly(w http.ResponseWriter, r io.Reader, rate int) {
	piece := max(rate/20, 1)
	fl, _ := w.(http.Flusher)
	for {
		n, err := io.CopyN(w, r, int64(piece))
		if n > 0 && fl != nil {
			fl.Flush()
		}
		if err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeHead(bw *bufio.ReadWriter, resp *http.Response) {
	fmt.Fprintf(bw, "HTTP/1.1 %s\r\n", resp.Status)
	resp.Header.Set("Content-Length", fmt.Sprint(resp.ContentLength))
	resp.Header.Write(bw)
	bw.WriteString("\r\n")
}

func hijackReset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // RST instead of FIN
	}
	conn.Close()
}

package ontology

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"unicode/utf8"
)

// input wraps the bytes of one source: it hashes them as they are read and
// decompresses gzip when the first bytes are the gzip magic, whatever the
// name says, because URLs and renamed files lie about their suffix. The
// source's digest is of the decompressed bytes, so a file and its gzip are
// one source.
type input struct {
	name string
	h    hash.Hash     // the bytes as given
	hd   hash.Hash     // the decompressed bytes; nil when the input is not gzip
	raw  *bufio.Reader // the bytes as given (hashed)
	gz   *gzip.Reader  // nil when the input is not gzip
	r    *bufio.Reader // the decompressed bytes
	// cut is the number of a last line that ends without a newline (0
	// when the text ends in one): a plain file cut short looks whole,
	// as a gzip or JSON one does not.
	cut int
}

// checkLine records a last line without its newline and refuses a line
// that is not UTF-8 (OBO and the tables are UTF-8; a Latin-1 "café"
// would import as U+FFFD and match nothing).
func (in *input) checkLine(name string, n int, s string, eof bool) error {
	if eof {
		in.cut = n
	}
	if utf8.ValidString(s) {
		return nil
	}
	if n == 1 && len(s) >= 2 && (s[:2] == "\xff\xfe" || s[:2] == "\xfe\xff") {
		return syntaxErr(name, n, "the file is UTF-16 (byte-order mark %#x %#x), not UTF-8: convert it to UTF-8 first (iconv -f utf-16 -t utf-8, say)", s[0], s[1])
	}
	col := 0
	for col < len(s) {
		r, size := utf8.DecodeRuneInString(s[col:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		col += size
	}
	return syntaxErr(name, n, "not UTF-8 (byte %#x at column %d): convert the file to UTF-8 first (iconv -f latin1 -t utf-8, say)", s[col], col+1)
}

// cutWarning is the warning for a last line without its newline.
func (in *input) cutWarning(name string) []string {
	if in.cut == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s:%d: the last line ends without a newline: is the file truncated? (its last value may be cut)", name, in.cut)}
}

func newInput(r io.Reader, name string) (*input, error) {
	in := &input{name: name, h: sha256.New()}
	in.raw = bufio.NewReaderSize(io.TeeReader(r, in.h), 64<<10)
	magic, err := in.raw.Peek(2)
	if err != nil && err != io.EOF {
		return nil, &SyntaxError{File: name, Msg: "read", Err: err}
	}
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		in.gz, err = gzip.NewReader(in.raw)
		if err != nil {
			return nil, &SyntaxError{File: name, Line: 1, Msg: "gzip header", Err: err}
		}
		in.hd = sha256.New()
		in.r = bufio.NewReaderSize(io.TeeReader(in.gz, in.hd), 64<<10)
	} else {
		in.r = in.raw
	}
	return in, nil
}

// maxLine caps one line of an OBO file or a table. The longest line of the
// real files is 24 KB (a GO.db row); an unbounded one was held ~22 times
// over while it was parsed and indexed (a 100 MB name: line took 2.3 GB).
// owl-axioms gets more room: a full release puts all of its OWL-only axioms
// on that one header line, which is checked but never indexed.
const (
	maxLine    = 1 << 20
	maxOWLLine = 64 << 20
)

// errLongLine is returned by readLine for a line over the cap.
var errLongLine = errors.New("line too long")

// readLine returns the next line of the decompressed bytes with its
// newline, as ReadString('\n') does, but refuses a line over the cap
// without reading it all into memory.
func (in *input) readLine() (string, error) {
	b, err := in.r.ReadSlice('\n')
	if err != bufio.ErrBufferFull {
		return string(b), err
	}
	limit := maxLine
	if bytes.HasPrefix(b, []byte("owl-axioms:")) {
		limit = maxOWLLine
	}
	buf := append([]byte(nil), b...)
	for err == bufio.ErrBufferFull {
		if len(buf) > limit {
			return "", errLongLine
		}
		b, err = in.r.ReadSlice('\n')
		buf = append(buf, b...)
	}
	if len(buf) > limit {
		return "", errLongLine
	}
	return string(buf), err
}

// digest drains what the parser left unread (trailing bytes, the gzip
// footer) so the hash covers the whole input, and returns the digest of
// its content (decompressed) in hex.
func (in *input) digest() (string, error) {
	if in.hd != nil {
		if _, err := io.Copy(io.Discard, in.r); err != nil {
			return "", in.readErr(0, err)
		}
	}
	if _, err := io.Copy(io.Discard, in.raw); err != nil {
		return "", &SyntaxError{File: in.name, Msg: "read", Err: err}
	}
	if in.hd != nil {
		return hex.EncodeToString(in.hd.Sum(nil)), nil
	}
	return hex.EncodeToString(in.h.Sum(nil)), nil
}

// readErr describes an error returned while reading the decompressed
// stream at the given line: input that ends early is the usual cause, a
// cut gzip or a download cut short (a plain body shorter than its
// Content-Length).
func (in *input) readErr(line int, err error) error {
	msg := "read"
	switch {
	case err == errLongLine:
		return syntaxErr(in.name, line, "line longer than %d MiB (%d MiB for owl-axioms): is this an OBO file or a table?", maxLine>>20, maxOWLLine>>20)
	case err == io.ErrUnexpectedEOF && in.gz != nil:
		msg = "input ends early (truncated gzip?)"
	case err == io.ErrUnexpectedEOF:
		msg = "input ends early (download cut short?)"
	case err == gzip.ErrChecksum:
		msg = "gzip checksum mismatch (corrupt file)"
	}
	return &SyntaxError{File: in.name, Line: line, Msg: msg, Err: err}
}

// sizedBody is a response body that knows its Content-Length (-1 when
// the server did not say), for a progress bar's total.
type sizedBody struct {
	io.ReadCloser
	size int64
}

// Size is the body's length in bytes as the server gave it, or -1.
func (b sizedBody) Size() int64 { return b.size }

// Open returns the bytes at location: an http(s) URL or a file path. The
// caller closes the result. Bytes are returned as stored; the readers
// decompress gzip themselves. A URL's body has a Size() int64 method: its
// Content-Length, or -1. client nil means http.DefaultClient.
func Open(ctx context.Context, location string, client *http.Client) (io.ReadCloser, error) {
	if strings.HasPrefix(location, "http://") || strings.HasPrefix(location, "https://") {
		if client == nil {
			client = http.DefaultClient
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, location, nil)
		if err != nil {
			return nil, fmt.Errorf("ontology: %s: %w", location, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			// The URL once: a *url.Error says `Get "URL": …`.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("ontology: cannot fetch %s: %w", location, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			err := fmt.Errorf("ontology: cannot fetch %s: HTTP %s", location, resp.Status)
			if resp.StatusCode == http.StatusNotFound {
				err = fmt.Errorf("%w (%w)", err, ErrNotFound)
			}
			return nil, err
		}
		return sizedBody{resp.Body, resp.ContentLength}, nil
	}
	f, err := os.Open(location)
	if err != nil {
		return nil, fmt.Errorf("ontology: %w", err)
	}
	return f, nil
}

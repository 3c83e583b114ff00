// Package s3 is a storage.Backend on an S3 bucket: AWS or any S3-compatible
// server (an endpoint, a region, path-style addressing), with credentials
// from the standard AWS chain (environment, shared config and credentials
// files, SSO, web identity, container and instance roles).
//
// The backend makes exactly one attempt per call: retries with backoff are a
// decorator (storage/retry) that asks Retryable whether an error is worth
// another try. Every object name lives under the configured prefix.
//
// Integrity: a Put sends a CRC32C of the body (x-amz-checksum-crc32c), which
// the server checks before it stores the object and echoes; a server that
// does not echo it gets the object again with Content-MD5, and so does every
// later Put. A Get checks the length against Content-Length and, when the
// ETag is a plain MD5 (a single-part upload without KMS), the bytes against
// it; a GetRange checks the length and the Content-Range it got. The
// content store verifies every chunk against its digest on top of this.
//
// Errors name the operation, the bucket and the object, never credentials
// (the SDK's errors do not carry them; no request is logged).
package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/lamina-bio/lamina/storage"
)

// Config says which bucket to use and how to reach it. It holds no secret:
// credentials come from the standard chain unless a test sets Static.
type Config struct {
	Bucket    string
	Prefix    string // without leading or trailing slash; may be empty
	Endpoint  string // e.g. http://127.0.0.1:7070; empty for AWS
	Region    string // empty: from the AWS config, else us-east-1
	PathStyle bool   // bucket in the path, not the host name

	// Static credentials, for tests and tools that hold them already;
	// empty means the standard chain.
	Static *credentials.StaticCredentialsProvider

	// HTTPClient replaces the default transport (tests, fault injection).
	HTTPClient *http.Client
	// Timeout bounds one request that moves little data (a HEAD, a
	// DELETE); zero means 15 s. A GET has no total deadline: it fails
	// when no byte of its answer arrives for Timeout (the headers, then
	// each read of the body), so a slow link that moves bytes never
	// fails it and a hung server does within Timeout. A PUT has longer
	// by its bytes (timeoutFor).
	Timeout time.Duration
	// NoBucketCheck skips Open's HeadBucket: for commands that may not
	// touch storage at all, which then work while the server is away.
	NoBucketCheck bool
}

// ParseURL splits "s3://bucket/prefix" into bucket and prefix.
func ParseURL(u string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	if !ok {
		return "", "", fmt.Errorf("s3: %q is not an s3://bucket/prefix URL", u)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	prefix = strings.Trim(prefix, "/")
	if bucket == "" || strings.ContainsAny(bucket, " \t\n@:") {
		return "", "", fmt.Errorf("s3: %q names no valid bucket: use s3://bucket/prefix", u)
	}
	return bucket, prefix, nil
}

// Backend is a storage.Backend on one bucket and prefix. It is safe for
// concurrent use.
type Backend struct {
	cl      *s3.Client
	cfg     Config
	source  string // where the credentials come from, for people
	timeout time.Duration
	md5Only atomic.Bool // the server did not confirm a CRC32C: use Content-MD5
}

var (
	_ storage.Backend     = (*Backend)(nil)
	_ storage.RangeFiller = (*Backend)(nil)
)

// Open builds a client for cfg and checks that the bucket answers. It
// fails with a clear message when no credentials are found or the bucket
// does not exist.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3: no bucket")
	}
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	opts := []func(*config.LoadOptions) error{
		// One attempt per call: storage/retry decides about the next.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		// The SDK's own log lines ("WARN falling back to IMDSv1 …") would
		// reach the user's terminal before lamina's message says what
		// is wrong; errors carry what they say.
		config.WithLogger(logging.Nop{}),
		config.WithClientLogMode(0),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.Static != nil {
		opts = append(opts, config.WithCredentialsProvider(*cfg.Static))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(cfg.HTTPClient))
	}
	if cfg.Endpoint != "" && strings.HasPrefix(cfg.Endpoint, "http://") {
		// AWS_CA_BUNDLE is set on these machines; it is meaningless for a
		// plain-HTTP endpoint and must not stop the client from loading.
		opts = append(opts, config.WithCustomCABundle(nil))
	}
	ac, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if ac.Region == "" {
		ac.Region = "us-east-1"
	}
	b := &Backend{cfg: cfg, timeout: cfg.Timeout}
	if b.timeout == 0 {
		b.timeout = 15 * time.Second
	}
	b.cl = s3.NewFromConfig(ac, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Put sets its own checksum (CRC32C, or Content-MD5 for servers
		// that do not confirm one); the SDK computes none of its own.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	if ac.Credentials != nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		creds, err := ac.Credentials.Retrieve(cctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("s3: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or another source of the standard chain): %s", scrub(err))
		}
		b.source = creds.Source
	}
	if cfg.NoBucketCheck {
		return b, nil
	}
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The opening check is a CLI command's first call: a server that is
	// restarting or a connection reset must not fail it at once, so a
	// retryable failure gets openTries tries over about 2 s.
	for try := 1; ; try++ {
		_, err := b.cl.HeadBucket(hctx, &s3.HeadBucketInput{Bucket: aws.String(cfg.Bucket)})
		if err == nil {
			return b, nil
		}
		if bare404(err) {
			// A HEAD's 404 has no body, and some servers (versitygw:
			// XAdminUserNotFound) send it for an access key they do not
			// know: a GET of the bucket says which it is.
			if _, lerr := b.cl.ListObjectsV2(hctx, &s3.ListObjectsV2Input{Bucket: aws.String(cfg.Bucket), MaxKeys: aws.Int32(1)}); lerr != nil {
				var api smithy.APIError
				if errors.As(lerr, &api) && api.ErrorCode() != "" && api.ErrorCode() != "NotFound" {
					err = lerr
				}
			}
		}
		werr := b.wrap("open bucket", "", err)
		if try >= openTries || !Retryable(werr) || hctx.Err() != nil {
			return nil, werr
		}
		select {
		case <-time.After(openBackoff << (try - 1)): // 0.5 s, then 1 s, …
		case <-hctx.Done():
			return nil, werr
		}
	}
}

// Ping asks the server whether the bucket is there (one HeadBucket, no
// retry): any answer, even a refusal, says the server answers.
func (b *Backend) Ping(ctx context.Context) error {
	_, err := b.cl.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b.cfg.Bucket)})
	if err != nil {
		return b.wrap("check bucket", "", err)
	}
	return nil
}

// openTries and openBackoff bound the retries of Open's bucket check.
var (
	openTries   = 3
	openBackoff = 500 * time.Millisecond
)

// CredentialSource names where the credentials came from ("EnvConfigCredentials",
// "SharedConfigCredentials: /home/u/.aws/credentials", …), never the credentials.
func (b *Backend) CredentialSource() string { return b.source }

// Checksum names the integrity check that PUTs carry: "CRC32C", or
// "Content-MD5" once the server failed to confirm a CRC32C.
func (b *Backend) Checksum() string {
	if b.md5Only.Load() {
		return "Content-MD5"
	}
	return "CRC32C"
}

func (b *Backend) String() string {
	s := "s3://" + b.cfg.Bucket
	if b.cfg.Prefix != "" {
		s += "/" + b.cfg.Prefix
	}
	if b.cfg.Endpoint != "" {
		s += " at " + b.cfg.Endpoint
	}
	return s
}

func (b *Backend) key(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
		return "", fmt.Errorf("storage: bad object name %q", name)
	}
	if b.cfg.Prefix == "" {
		return name, nil
	}
	return b.cfg.Prefix + "/" + name, nil
}

func (b *Backend) name(key string) string {
	if b.cfg.Prefix == "" {
		return key
	}
	return strings.TrimPrefix(key, b.cfg.Prefix+"/")
}

// timeoutFor is the deadline of a request that writes n bytes (a PUT),
// or of a listing page (n > 0, write false): the base (Config.Timeout)
// plus 4 s per MiB written (256 KiB/s: uploads run in the background) or
// a second per MiB read. A GET has none: idle watches it instead, so a
// slow link never fails a transfer that moves. A hung server thus costs a
// small request seconds, not the 5 minutes every request once had (and
// the retry budget cuts an attempt in flight in any case: storage/retry).
func (b *Backend) timeoutFor(n int64, write bool) time.Duration {
	if write {
		return b.timeout + time.Duration(n)*4*time.Second/(1<<20)
	}
	return b.timeout + time.Duration(n)*time.Second/(1<<20)
}

// idleWatch ends a GET when no byte of its answer arrives for d: the
// headers within d of the request, then each read of the body within d
// of the last one that moved bytes. Bytes read are reported to the
// caller's storage.WithProgress.
type idleWatch struct {
	ctx    context.Context // the request's; ends when the watch fires
	outer  context.Context // the caller's
	cancel context.CancelCauseFunc
	d      time.Duration
	last   atomic.Int64 // UnixNano of the last byte
	t      *time.Timer
}

func (b *Backend) idle(ctx context.Context) *idleWatch {
	w := &idleWatch{outer: ctx, d: b.timeout}
	w.ctx, w.cancel = context.WithCancelCause(ctx)
	w.last.Store(time.Now().UnixNano())
	w.t = time.AfterFunc(w.d, w.check)
	return w
}

func (w *idleWatch) check() {
	since := time.Since(time.Unix(0, w.last.Load()))
	if since >= w.d {
		w.cancel(fmt.Errorf("%w for %v", storage.ErrStalled, w.d))
		return
	}
	w.t.Reset(w.d - since)
}

func (w *idleWatch) stop() {
	w.t.Stop()
	w.cancel(nil)
}

// err returns the error of a request that the watch, or a retry budget
// above, cut: that cause (cut).
func (w *idleWatch) err(err error) error { return cut(w.ctx, err) }

// cut returns the error of a request whose context ended with a cause of
// its own (the idle watch's, a retry budget's: both wrap
// storage.ErrStalled): that cause, a timeout worth another try, rather
// than the SDK's "context canceled", which reads as the caller's cancel
// (the mount answers it with EINTR, and a reader tries again). Other
// errors pass unchanged.
func cut(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	if c := context.Cause(ctx); c != ctx.Err() && !errors.Is(err, c) {
		return fmt.Errorf("%w (%s)", c, err)
	}
	return err
}

// body reports what is read from r to the watch and the caller.
func (w *idleWatch) body(r io.Reader) io.Reader { return watchedBody{r, w} }

type watchedBody struct {
	r io.Reader
	w *idleWatch
}

func (b watchedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.w.last.Store(time.Now().UnixNano())
		storage.Progress(b.w.outer, n)
	}
	return n, err
}

func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	k, err := b.key(name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeoutFor(int64(len(data)), true))
	defer cancel()
	if !b.md5Only.Load() {
		confirmed, err := b.putCRC32C(ctx, k, data)
		if err != nil {
			return b.wrap("put", name, cut(ctx, err))
		}
		if confirmed {
			return nil
		}
		// The server stored the object without echoing the checksum sent,
		// so it may not check one: send this object again with
		// Content-MD5, and every later one.
		b.md5Only.Store(true)
	}
	if err := b.putMD5(ctx, k, data); err != nil {
		return b.wrap("put", name, cut(ctx, err))
	}
	return nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// putCRC32C sends data with x-amz-checksum-crc32c, which a server that
// supports flexible checksums (AWS, versitygw, MinIO) checks before it
// stores the object and echoes in its answer. CRC32C is computed by the
// processor (SSE 4.2); MD5 cost 1.7 s of CPU per GiB saved
// (docs/s3-bench.md). confirmed is false when the answer has no checksum.
func (b *Backend) putCRC32C(ctx context.Context, key string, data []byte) (confirmed bool, err error) {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.Checksum(data, castagnoli))
	want := base64.StdEncoding.EncodeToString(sum[:])
	out, err := b.cl.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(b.cfg.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c, ChecksumCRC32C: aws.String(want),
	}, unsignedPayload)
	if err != nil {
		return false, err
	}
	return aws.ToString(out.ChecksumCRC32C) == want, nil
}

// putMD5 sends data with Content-MD5, the check every S3 server knows.
func (b *Backend) putMD5(ctx context.Context, key string, data []byte) error {
	sum := md5.Sum(data)
	_, err := b.cl.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(b.cfg.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	}, unsignedPayload)
	return err
}

func (b *Backend) Get(ctx context.Context, name string) ([]byte, error) {
	k, err := b.key(name)
	if err != nil {
		return nil, err
	}
	w := b.idle(ctx)
	defer w.stop()
	out, err := b.cl.GetObject(w.ctx, &s3.GetObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)})
	if err != nil {
		return nil, b.wrap("get", name, w.err(err))
	}
	defer out.Body.Close()
	want := aws.ToInt64(out.ContentLength)
	data, err := readBody(w.body(out.Body), want)
	if err != nil {
		return nil, b.wrap("get", name, w.err(err))
	}
	if etag := strings.Trim(aws.ToString(out.ETag), `"`); len(etag) == 32 && !strings.Contains(etag, "-") {
		if sum := md5.Sum(data); hex.EncodeToString(sum[:]) != strings.ToLower(etag) {
			return nil, b.wrap("get", name, fmt.Errorf("%w: MD5 of the body does not match the ETag", ErrIntegrity))
		}
	}
	return data, nil
}

func (b *Backend) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	return b.getRange(ctx, name, off, n, nil)
}

// GetRangeInto reads the len(buf) bytes at off straight from the body into
// buf: the disk cache reads its GETs into buffers it reuses, instead of
// allocating and zeroing 16 MiB per request (docs/s3-bench.md, sixth pass).
func (b *Backend) GetRangeInto(ctx context.Context, name string, off int64, buf []byte) error {
	_, err := b.getRange(ctx, name, off, int64(len(buf)), buf)
	return err
}

// getRange returns n bytes at off, read into buf (len n) or, when buf is
// nil, into a new slice.
func (b *Backend) getRange(ctx context.Context, name string, off, n int64, buf []byte) ([]byte, error) {
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("storage: get %s: bad range %d+%d", name, off, n)
	}
	if n == 0 {
		info, err := b.Stat(ctx, name)
		if err != nil {
			return nil, err
		}
		if off > info.Size {
			return nil, fmt.Errorf("storage: get %s: range %d+%d past the end (%d bytes)", name, off, n, info.Size)
		}
		return []byte{}, nil
	}
	k, err := b.key(name)
	if err != nil {
		return nil, err
	}
	w := b.idle(ctx)
	defer w.stop()
	out, err := b.cl.GetObject(w.ctx, &s3.GetObjectInput{
		Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
	})
	if err != nil {
		return nil, b.wrap("get range", name, w.err(err))
	}
	defer out.Body.Close()
	// A range that runs past the end comes back shorter (206 with the
	// bytes there are) or as 416: both are the caller's error.
	var start, end, total int64
	if cr := aws.ToString(out.ContentRange); cr != "" {
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &start, &end, &total); err == nil {
			if start != off {
				return nil, b.wrap("get range", name, fmt.Errorf("%w: asked for bytes from %d, got %q", ErrIntegrity, off, cr))
			}
			if total < off+n {
				return nil, fmt.Errorf("storage: get %s: range %d+%d past the end (%d bytes)", name, off, n, total)
			}
		}
	}
	if cl := aws.ToInt64(out.ContentLength); cl != n {
		if out.ContentRange == nil && cl > n {
			return nil, b.wrap("get range", name, fmt.Errorf("%w: server ignored the range (%d bytes)", ErrIntegrity, cl))
		}
		return nil, fmt.Errorf("storage: get %s: range %d+%d past the end (got %d bytes)", name, off, n, cl)
	}
	if buf == nil {
		buf = make([]byte, n)
	}
	if err := readFull(w.body(out.Body), buf); err != nil {
		return nil, b.wrap("get range", name, w.err(err))
	}
	return buf, nil
}

// unsignedPayload skips the SHA-256 of the body that SigV4 would otherwise
// sign: the CRC32C (or Content-MD5) already lets the server refuse a
// damaged body, and hashing every byte twice cost a core-second per GiB on
// the save path (docs/s3-bench.md). The headers are still signed.
func unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}

// readBody reads exactly want bytes (want < 0: unknown) and reports a body
// that ends early as io.ErrUnexpectedEOF, which is worth a retry.
func readBody(r io.Reader, want int64) ([]byte, error) {
	if want < 0 {
		return io.ReadAll(r)
	}
	buf := make([]byte, want)
	if err := readFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// readFull fills buf from r and reports a body that ends early as
// io.ErrUnexpectedEOF, which is worth a retry.
func readFull(r io.Reader, buf []byte) error {
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w: body ended early", err)
	}
	return nil
}

func (b *Backend) Stat(ctx context.Context, name string) (storage.Info, error) {
	k, err := b.key(name)
	if err != nil {
		return storage.Info{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	out, err := b.cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)})
	if err != nil {
		return storage.Info{}, b.wrap("stat", name, cut(ctx, err))
	}
	return storage.Info{Name: name, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

func (b *Backend) Delete(ctx context.Context, name string) error {
	k, err := b.key(name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	_, err = b.cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)})
	if err != nil {
		if werr := b.wrap("delete", name, cut(ctx, err)); storage.IsNotFound(werr) {
			return nil
		} else {
			return werr
		}
	}
	return nil
}

func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	p := prefix
	if b.cfg.Prefix != "" {
		p = b.cfg.Prefix + "/" + prefix
	}
	pg := s3.NewListObjectsV2Paginator(b.cl, &s3.ListObjectsV2Input{Bucket: aws.String(b.cfg.Bucket), Prefix: aws.String(p)})
	for pg.HasMorePages() {
		lctx, cancel := context.WithTimeout(ctx, b.timeoutFor(1<<20, false)) // a page of 1000 keys
		page, err := pg.NextPage(lctx)
		err = cut(lctx, err)
		cancel()
		if err != nil {
			return b.wrap("list", prefix, err)
		}
		for _, o := range page.Contents {
			if err := fn(storage.Info{Name: b.name(aws.ToString(o.Key)), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Sync does nothing: S3 acknowledges a PUT once the object is durable.
func (b *Backend) Sync(ctx context.Context) error { return ctx.Err() }

// ErrIntegrity means the bytes that came back are not the ones asked for.
var ErrIntegrity = errors.New("s3: integrity check failed")

// Error is a failed S3 call.
type Error struct {
	Op, Bucket, Name string
	Status           int  // HTTP status, 0 when there was no response
	retry            bool // worth another attempt
	denied           bool // refused to these credentials (Denied)
	Err              error
}

func (e *Error) Error() string {
	return fmt.Sprintf("s3: %s s3://%s/%s: %s", e.Op, e.Bucket, e.Name, scrub(e.Err))
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether another attempt may succeed: 5xx, 429, 408,
// throttling, resets, timeouts, truncated or damaged bodies.
func (e *Error) Retryable() bool { return e.retry }

// Denied reports whether err is the server refusing this request to these
// credentials (401, 403: AccessDenied and the like; Open's 404 for an
// access key the server does not know). For a HEAD it says nothing about
// the object: AWS answers 403 for a missing key too when the credentials
// may not list the bucket.
func Denied(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.denied
}

// unknownUser holds the error codes of a 404 that is about the
// credentials, not the bucket (versitygw's for an unknown access key).
var unknownUser = map[string]bool{"XAdminUserNotFound": true, "InvalidAccessKeyId": true}

// bare404 reports a 404 without an error code: a HEAD's answer.
func bare404(err error) bool {
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != 404 {
		return false
	}
	var api smithy.APIError
	return !errors.As(err, &api) || api.ErrorCode() == "" || api.ErrorCode() == "NotFound"
}

// Retryable reports whether err, from this package, is worth retrying.
func Retryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.retry
}

func (b *Backend) wrap(op, name string, err error) error {
	if b.cfg.Prefix != "" { // the object's whole key, as the bucket names it
		name = strings.TrimSuffix(b.cfg.Prefix+"/"+name, "/")
	}
	// A dropped connection comes back wrapping io.EOF: a failed request,
	// never the end of anything (storage.NotEOF).
	err = storage.NotEOF(err)
	e := &Error{Op: op, Bucket: b.cfg.Bucket, Name: name, Err: err}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		e.Status = re.HTTPStatusCode()
		e.denied = e.Status == 401 || e.Status == 403
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var nsb *types.NoSuchBucket
	var api smithy.APIError
	code := ""
	if errors.As(err, &api) {
		code = api.ErrorCode()
	}
	switch {
	case errors.As(err, &nsb) || code == "NoSuchBucket":
		e.Err = fmt.Errorf("bucket %q does not exist: create it (`aws s3 mb s3://%s%s`, or in the provider's console)", b.cfg.Bucket, b.cfg.Bucket, endpointArg(b.cfg.Endpoint))
	case op == "open bucket" && e.Status == 404 && unknownUser[code]:
		// A 404 for credentials the server does not know (AWS answers
		// 403): no word on the bucket.
		e.denied = true
		e.Err = &causeError{msg: fmt.Sprintf("access denied to bucket %q at %s: the server knows no user with the credentials' access key (%s): check the credentials (%s)", b.cfg.Bucket, b.endpoint(), code, b.sourceText()), err: err}
	case op == "open bucket" && (e.Status == 404 || errors.As(err, &nf)):
		// HeadBucket's answer has no body: a bare 404 (NotFound), which
		// some servers send for unknown credentials too.
		e.Err = fmt.Errorf("bucket %q not found at %s, or the credentials (%s) are not known there: create it (`aws s3 mb s3://%s%s`, or in the provider's console), or check them", b.cfg.Bucket, b.endpoint(), b.sourceText(), b.cfg.Bucket, endpointArg(b.cfg.Endpoint))
	case errors.As(err, &nsk) || errors.As(err, &nf) || code == "NoSuchKey" || (e.Status == 404 && op != "open bucket"):
		e.Err = fmt.Errorf("%w (%s)", storage.ErrNotFound, code)
	case errors.Is(err, context.Canceled):
	case e.Status >= 500 || e.Status == 429 || e.Status == 408:
		e.retry = true
	case code == "SlowDown" || code == "Throttling" || code == "ThrottlingException" || code == "RequestTimeout" || code == "RequestTimeTooSkewed" || code == "BadDigest" || code == "IncompleteBody":
		e.retry = true
	case e.Status == 416:
		// A range past the end: the caller's error.
	case e.Status == 401 || e.Status == 403:
		// The SDK's text (a request id, "https response error" for an
		// http endpoint) tells a person nothing: say what to check.
		e.Err = &causeError{msg: fmt.Sprintf("access denied to bucket %q at %s: check the credentials (%s) and their permissions on the bucket", b.cfg.Bucket, b.endpoint(), b.sourceText()), err: err}
	case e.Status >= 400:
		// Bad request and friends: the same request fails again.
	default:
		// No HTTP answer: refused, reset, timed out, a body cut short or
		// damaged. Worth another try (a deadline of the caller's stops it).
		e.retry = ctx0(err)
		if why := unreachable(err); why != "" {
			e.Err = &causeError{msg: fmt.Sprintf("cannot reach endpoint %s: %s", b.endpoint(), why), err: err}
		} else if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, storage.ErrStalled) {
			// The SDK's text ("https response error StatusCode: 0,
			// RequestID: , HostID: , canceled, context deadline
			// exceeded") is what `lamina status` showed of a hung server.
			e.Err = &causeError{msg: fmt.Sprintf("no answer from endpoint %s in time (timed out)", b.endpoint()), err: err}
		}
	}
	return e
}

// sourceText says where the credentials came from, for people: never
// the credentials themselves.
func (b *Backend) sourceText() string {
	switch {
	case b.source == "":
		return "from the standard AWS chain"
	case strings.HasPrefix(b.source, "EnvConfigCredentials"):
		return "from the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"
	case strings.HasPrefix(b.source, "SharedConfigCredentials"):
		return "from the shared AWS files" + strings.TrimPrefix(b.source, "SharedConfigCredentials") + " (AWS_PROFILE picks the profile)"
	}
	return "from " + b.source
}

// endpoint names the server for people.
func (b *Backend) endpoint() string {
	if b.cfg.Endpoint == "" {
		return "the AWS endpoint"
	}
	return b.cfg.Endpoint
}

// unreachable says why no connection to the server was made, or "" when
// err is not of that kind (a connection cut in the middle, say).
func unreachable(err error) string {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (is the server up, and is the endpoint's port right?)"
	case errors.As(err, &dns) && dns.IsNotFound:
		return fmt.Sprintf("no such host %q (is the endpoint's host name right?)", dns.Name)
	case errors.As(err, &dns):
		return fmt.Sprintf("cannot look up host %q: %s", dns.Name, dns.Err)
	case errors.As(err, &op) && op.Op == "dial" && op.Timeout():
		return "connection timed out (is the endpoint right, and the network up?)"
	}
	return ""
}

// causeError is a message for people that keeps the error it explains
// for errors.Is and errors.As.
type causeError struct {
	msg string
	err error
}

func (e *causeError) Error() string { return e.msg }
func (e *causeError) Unwrap() error { return e.err }

func endpointArg(endpoint string) string {
	if endpoint == "" {
		return ""
	}
	return " --endpoint-url " + endpoint
}

// ctx0 is false for errors caused by the caller's context.
func ctx0(err error) bool {
	return !errors.Is(err, context.Canceled)
}

// scrub removes what could look like a secret from an error text. The SDK
// does not put credentials in errors; this guards against a future one that
// quotes a header.
func scrub(err error) string {
	s := err.Error()
	for _, h := range []string{"Authorization", "X-Amz-Security-Token", "X-Amz-Credential", "X-Amz-Signature"} {
		if i := strings.Index(s, h); i >= 0 {
			s = s[:i] + h + ": [redacted]"
		}
	}
	return s
}

// GetTag reads the object with its ETag (storage.Swapper).
func (b *Backend) GetTag(ctx context.Context, name string) ([]byte, string, error) {
	k, err := b.key(name)
	if err != nil {
		return nil, "", err
	}
	w := b.idle(ctx)
	defer w.stop()
	out, err := b.cl.GetObject(w.ctx, &s3.GetObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)})
	if err != nil {
		return nil, "", b.wrap("get", name, w.err(err))
	}
	defer out.Body.Close()
	data, err := readBody(w.body(out.Body), aws.ToInt64(out.ContentLength))
	if err != nil {
		return nil, "", b.wrap("get", name, w.err(err))
	}
	etag := aws.ToString(out.ETag)
	if plain := strings.Trim(etag, `"`); len(plain) == 32 && !strings.Contains(plain, "-") {
		if sum := md5.Sum(data); hex.EncodeToString(sum[:]) != strings.ToLower(plain) {
			return nil, "", b.wrap("get", name, fmt.Errorf("%w: MD5 of the body does not match the ETag", ErrIntegrity))
		}
	}
	if etag == "" {
		return nil, "", b.wrap("get", name, errors.New("the server sent no ETag: it cannot replace this object safely"))
	}
	return data, etag, nil
}

// PutIf stores data with If-Match: tag, or If-None-Match: * for tag "",
// which AWS and versitygw honour (412 when the object changed). The body
// goes with Content-MD5, which every server checks.
func (b *Backend) PutIf(ctx context.Context, name string, data []byte, tag string) error {
	k, err := b.key(name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeoutFor(int64(len(data)), true))
	defer cancel()
	sum := md5.Sum(data)
	in := &s3.PutObjectInput{
		Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	}
	if tag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(tag)
	}
	if _, err := b.cl.PutObject(ctx, in, unsignedPayload); err != nil {
		e := b.wrap("put", name, cut(ctx, err))
		var se *Error
		// 412: the condition failed. 409: AWS's answer to a conditional
		// write racing another one; read again as well.
		if errors.As(e, &se) && (se.Status == 412 || se.Status == 409) {
			se.retry = false
			return fmt.Errorf("%w: %w", storage.ErrChanged, e)
		}
		return e
	}
	return nil
}

package s3_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// TestOpenErrorMessages: a wrong secret and an endpoint that cannot be
// reached are said in words a person can act on, not in the SDK's text
// (request ids, "https" for an http endpoint), with the cause still
// wrapped and the secret never shown.
func TestOpenErrorMessages(t *testing.T) {
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)

	const secret = "not-the-secret-Zq9"
	cfg := srv.Config(bucket)
	p := credentials.NewStaticCredentialsProvider(srv.AccessKey, secret, "")
	cfg.Static = &p
	_, err := s3b.Open(context.Background(), cfg)
	if err == nil {
		t.Fatal("Open with a wrong secret succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"access denied to bucket", bucket, srv.Endpoint, "check the credentials", "StaticCredentials"} {
		if !strings.Contains(msg, want) {
			t.Errorf("wrong secret: no %q in %q", want, msg)
		}
	}
	for _, not := range []string{secret, "RequestID", "https response error"} {
		if strings.Contains(msg, not) {
			t.Errorf("wrong secret: %q in %q", not, msg)
		}
	}
	var re *smithyhttp.ResponseError
	if !s3b.Denied(err) || !errors.As(err, &re) {
		t.Errorf("wrong secret: the cause is not wrapped: %#v", err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	cfg = srv.Config(bucket)
	cfg.Endpoint = closed
	_, err = s3b.Open(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "cannot reach endpoint "+closed+": connection refused") || strings.Contains(err.Error(), "https response error") {
		t.Errorf("closed port: %v", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("closed port: the cause is not wrapped: %#v", err)
	}

	cfg.Endpoint = "http://no-such-host.invalid:9000"
	_, err = s3b.Open(context.Background(), cfg)
	var dns *net.DNSError
	if err == nil || !strings.Contains(err.Error(), "cannot reach endpoint "+cfg.Endpoint) || !errors.As(err, &dns) {
		t.Errorf("unknown host: %v", err)
	}
}

// TestOpenUnknownAccessKey: versitygw answers the opening HeadBucket for
// an access key it does not know with a bare 404 (AWS: 403). That is said
// as access denied, not `bucket "b" does not exist: create it`; a bucket
// that is missing still is said so.
func TestOpenUnknownAccessKey(t *testing.T) {
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	cfg := srv.Config(bucket)
	p := credentials.NewStaticCredentialsProvider("NO-SUCH-USER-KEY", "whatever-secret", "")
	cfg.Static = &p
	_, err := s3b.Open(context.Background(), cfg)
	if err == nil || strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "access denied to bucket "+`"`+bucket+`"`) || !s3b.Denied(err) {
		t.Errorf("unknown access key: %v (denied %v)", err, s3b.Denied(err))
	}
	_, err = s3b.Open(context.Background(), srv.Config(bucket+"-missing"))
	if err == nil || !strings.Contains(err.Error(), `bucket "`+bucket+`-missing" does not exist: create it`) || s3b.Denied(err) {
		t.Errorf("missing bucket: %v", err)
	}
}

// TestTimeoutSaysNoAnswer: a request a hung server never answers fails
// saying so, not in the SDK's text (`lamina status` showed "https response
// error StatusCode: 0, RequestID: , HostID: , canceled, context deadline
// exceeded"), still a timeout worth another try.
func TestTimeoutSaysNoAnswer(t *testing.T) {
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	cfg := via.Config(bucket)
	cfg.Timeout = 500 * time.Millisecond
	b, err := s3b.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	proxy.Always(s3test.Hang)
	defer proxy.Always(s3test.None)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	for what, err := range map[string]error{"stat": statErr(b, "x"), "ping": b.Ping(ctx)} {
		if err == nil || !strings.Contains(err.Error(), "no answer from endpoint "+via.Endpoint) || strings.Contains(err.Error(), "https response error") {
			t.Errorf("%s of a hung server: %v", what, err)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !s3b.Retryable(err) {
			t.Errorf("%s of a hung server: %v is not a timeout worth another try", what, err)
		}
	}
}

func statErr(b *s3b.Backend, name string) error {
	_, err := b.Stat(context.Background(), name)
	return err
}

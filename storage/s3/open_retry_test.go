package s3_test

import (
	"context"
	"testing"
	"time"

	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// TestOpenRetriesBucketCheck checks that Open's opening HeadBucket, a CLI
// command's first S3 call, survives a server that resets the first two
// connections (it failed within milliseconds), and that a server that
// keeps failing still fails it after a short while with a clear error.
func TestOpenRetriesBucketCheck(t *testing.T) {
	srv := s3test.Fake(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	cfg := via.Config(bucket)
	proxy.Next(s3test.Reset, s3test.Status503)
	if _, err := s3b.Open(context.Background(), cfg); err != nil {
		t.Fatalf("Open after two transient faults: %v", err)
	}
	proxy.Always(s3test.Reset)
	start := time.Now()
	_, err := s3b.Open(context.Background(), cfg)
	proxy.Always(s3test.None)
	if err == nil {
		t.Fatal("Open succeeded while every connection was reset")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Open gave up after %v; want a short retry", d)
	}
}

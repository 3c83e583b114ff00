package s3_test

import (
	"context"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/retry"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
	"github.com/lamina-bio/lamina/storage/storagetest"
)

func open(t *testing.T, srv s3test.Server, prefix string) *s3b.Backend {
	t.Helper()
	cfg := srv.Config(srv.CreateBucket(t))
	cfg.Prefix = prefix
	b, err := s3b.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformanceVersity(t *testing.T) {
	srv := s3test.Real(t)
	for _, prefix := range []string{"", "lab/lamina"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T) storage.Backend { return open(t, srv, prefix) })
		})
	}
}

// The S3 server honours If-Match and If-None-Match on PUT, directly and
// through the retry decorator the instance puts in front of it.
func TestSwapperVersity(t *testing.T) {
	srv := s3test.Real(t)
	t.Run("direct", func(t *testing.T) {
		storagetest.RunSwapper(t, func(t *testing.T) storage.Swapper { return open(t, srv, "p") })
	})
	t.Run("retry", func(t *testing.T) {
		storagetest.RunSwapper(t, func(t *testing.T) storage.Swapper {
			return retry.New(open(t, srv, "p"), retry.DefaultPolicy, nil)
		})
	})
}

func TestConformanceFake(t *testing.T) {
	srv := s3test.Fake(t)
	storagetest.Run(t, func(t *testing.T) storage.Backend { return open(t, srv, "p") })
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ in, bucket, prefix string }{
		{"s3://b", "b", ""},
		{"s3://b/", "b", ""},
		{"s3://lab-bucket/lamina", "lab-bucket", "lamina"},
		{"s3://b/x/y/", "b", "x/y"},
		{"/local", "", ""},
		{"s3:///x", "", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			b, p, err := s3b.ParseURL(tc.in)
			if tc.bucket == "" {
				if err == nil {
					t.Fatalf("ParseURL(%q) accepted", tc.in)
				}
				return
			}
			if err != nil || b != tc.bucket || p != tc.prefix {
				t.Fatalf("ParseURL(%q) = %q, %q, %v", tc.in, b, p, err)
			}
		})
	}
}

func TestOpenErrorsHoldNoSecret(t *testing.T) {
	srv := s3test.Real(t)
	cfg := srv.Config("no-such-bucket-lamina")
	_, err := s3b.Open(context.Background(), cfg)
	if err == nil {
		t.Fatal("Open of a missing bucket succeeded")
	}
	if strings.Contains(err.Error(), srv.SecretKey) || !strings.Contains(err.Error(), "no-such-bucket-lamina") {
		t.Fatalf("error %q: want the bucket named and no secret", err)
	}
	srv.SecretKey = "wrong-secret-value"
	cfg = srv.Config(srv.CreateBucketOK(t))
	if _, err := s3b.Open(context.Background(), cfg); err == nil || strings.Contains(err.Error(), "wrong-secret-value") {
		t.Fatalf("Open with a wrong secret: %v", err)
	}
}

func realOrSkip(b *testing.B) s3test.Server {
	return s3test.Real(b)
}

// An error names the object by its whole key in the bucket, prefix
// included, so that a user can look for it with another S3 client.
func TestErrorsNameTheWholeKey(t *testing.T) {
	srv := s3test.Fake(t)
	b := open(t, srv, "lab/lamina")
	_, err := b.Get(context.Background(), "packs/ab/missing")
	if err == nil || !strings.Contains(err.Error(), "/lab/lamina/packs/ab/missing:") {
		t.Fatalf("Get of a missing object: %v", err)
	}
}

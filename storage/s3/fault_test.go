package s3_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/retry"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

var fastPolicy = retry.Policy{Attempts: 5, Base: 5 * time.Millisecond, Max: 40 * time.Millisecond, Elapsed: 10 * time.Second}

// TestFaults runs every call through a fault-injecting proxy and the retry
// decorator: transient faults are retried away, persistent ones fail with
// a retryable error after the budget, and no error carries the secret.
func TestFaults(t *testing.T) {
	srv := s3test.Fake(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	cfg := via.Config(bucket)
	cfg.Timeout = 5 * time.Second
	raw, err := s3b.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	b := retry.New(raw, fastPolicy, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	if err := b.Put(ctx, "packs/aa/x", data); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		faults []s3test.Fault
	}{
		{"500", []s3test.Fault{s3test.Status500}},
		{"503x3", []s3test.Fault{s3test.Status503, s3test.Status503, s3test.Status503}},
		{"reset", []s3test.Fault{s3test.Reset, s3test.Reset}},
		{"truncated", []s3test.Fault{s3test.Truncate}},
		{"mixed", []s3test.Fault{s3test.Truncate, s3test.Reset, s3test.Status500, s3test.Status503}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy.Next(tc.faults...)
			got, err := b.GetRange(ctx, "packs/aa/x", 1000, 30000)
			if err != nil || !bytes.Equal(got, data[1000:31000]) {
				t.Fatalf("GetRange = %d bytes, %v", len(got), err)
			}
			proxy.Next(tc.faults...)
			buf := bytes.Repeat([]byte{0xee}, 30000)
			if err := b.GetRangeInto(ctx, "packs/aa/x", 1000, buf); err != nil || !bytes.Equal(buf, data[1000:31000]) {
				t.Fatalf("GetRangeInto: %v (bytes right: %v)", err, bytes.Equal(buf, data[1000:31000]))
			}
			proxy.Next(tc.faults...)
			if got, err := b.Get(ctx, "packs/aa/x"); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get = %d bytes, %v", len(got), err)
			}
			proxy.Next(tc.faults...)
			if err := b.Put(ctx, "packs/aa/"+tc.name, data); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if got, err := b.Get(ctx, "packs/aa/"+tc.name); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get after Put = %d bytes, %v", len(got), err)
			}
		})
	}
	t.Run("budget", func(t *testing.T) {
		proxy.Always(s3test.Status503)
		defer proxy.Always(s3test.None)
		before := proxy.Requests()
		_, err := b.GetRange(ctx, "packs/aa/x", 0, 10)
		if err == nil || !retry.Retryable(err) {
			t.Fatalf("GetRange against a failing server: %v", err)
		}
		if n := proxy.Requests() - before; n != fastPolicy.Attempts {
			t.Fatalf("%d attempts, want %d", n, fastPolicy.Attempts)
		}
		before = proxy.Requests()
		if err := b.GetRangeInto(ctx, "packs/aa/x", 0, make([]byte, 10)); err == nil || !retry.Retryable(err) {
			t.Fatalf("GetRangeInto against a failing server: %v", err)
		}
		if n := proxy.Requests() - before; n != fastPolicy.Attempts {
			t.Fatalf("GetRangeInto: %d attempts, want %d", n, fastPolicy.Attempts)
		}
		if h := b.Health(); !h.Failing || h.Since.IsZero() || !strings.Contains(h.LastError, "503") {
			t.Fatalf("health after the budget was spent: %+v", h)
		}
	})
	t.Run("notFoundNotRetried", func(t *testing.T) {
		before := proxy.Requests()
		if _, err := b.Get(ctx, "packs/aa/missing"); !storage.IsNotFound(err) {
			t.Fatalf("Get(missing) = %v", err)
		}
		if n := proxy.Requests() - before; n != 1 {
			t.Fatalf("%d requests for a missing object, want 1", n)
		}
		if h := b.Health(); h.Failing {
			t.Fatalf("health after the server answered (not found): %+v", h)
		}
	})
	t.Run("serverDownThenBack", func(t *testing.T) {
		proxy.Down()
		go func() { time.Sleep(150 * time.Millisecond); proxy.Up() }()
		slow := retry.New(raw, retry.Policy{Attempts: 20, Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}, nil)
		if got, err := slow.Get(ctx, "packs/aa/x"); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get across an outage = %d bytes, %v", len(got), err)
		}
	})
	if strings.Contains(logs.String(), srv.SecretKey) {
		t.Fatal("a log line holds the secret key")
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Fatal("no log line about retries")
	}
}

// TestPutRefusesDamagedBody sends PUTs whose body a proxy changes on the
// way: the server must refuse each (CRC32C on versitygw; Content-MD5 on a
// server that does not confirm a CRC32C), leaving the object as it was.
func TestPutRefusesDamagedBody(t *testing.T) {
	for _, tc := range []struct {
		name, checksum string
		srv            func(testing.TB) s3test.Server
	}{{"versitygw", "CRC32C", s3test.Real}, {"fake", "Content-MD5", s3test.Fake}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.srv(t)
			bucket := srv.CreateBucket(t)
			proxy, via := s3test.NewProxy(t, srv)
			b, err := s3b.Open(context.Background(), via.Config(bucket))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			// The first PUT damaged: a server that checks no CRC32C
			// stores it, and the object is sent again with Content-MD5.
			old := bytes.Repeat([]byte("old "), 1<<16)
			proxy.Next(s3test.Corrupt)
			err = b.Put(ctx, "packs/aa/p", old)
			if tc.checksum == "CRC32C" {
				if err == nil {
					t.Fatal("Put of a damaged body succeeded")
				}
				err = b.Put(ctx, "packs/aa/p", old)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, err := b.Get(ctx, "packs/aa/p"); err != nil || !bytes.Equal(got, old) {
				t.Fatalf("Get = %d bytes, %v", len(got), err)
			}
			if got := b.Checksum(); got != tc.checksum {
				t.Fatalf("PUTs carry %s, want %s", got, tc.checksum)
			}
			data := bytes.Repeat([]byte("new bytes "), 1<<16)
			for i := 0; i < 2; i++ { // the second after any switch to Content-MD5
				proxy.Next(s3test.Corrupt)
				err := b.Put(ctx, "packs/aa/p", data)
				if err == nil || !s3b.Retryable(err) {
					t.Fatalf("Put of a damaged body = %v, want a retryable error", err)
				}
				if got, err := b.Get(ctx, "packs/aa/p"); err != nil || !bytes.Equal(got, old) {
					t.Fatalf("after a refused Put: Get = %d bytes, %v; want the old object", len(got), err)
				}
			}
			if err := b.Put(ctx, "packs/aa/p", data); err != nil {
				t.Fatal(err)
			}
			if got, err := b.Get(ctx, "packs/aa/p"); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get = %d bytes, %v", len(got), err)
			}
		})
	}
}

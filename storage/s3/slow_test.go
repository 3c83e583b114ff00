package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/retry"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// TestSlowLink: a server that answers slowly but steadily gives the right
// bytes, however long the transfer takes; one that stops sending fails
// within the idle bound. Each GET had a total deadline of its base plus a
// second per MiB, and each call a retry budget of its Elapsed plus a
// second per MiB, both from the start: on a link of 256 KiB/s the mount's
// 8 MiB read-ahead ranges were cut every time, each retry started the
// range over, and the health said "not answering" of a server that
// answered every request (audit 7). Here the base is 500 ms and the
// budget 1 s, and each range takes about 3 s.
func TestSlowLink(t *testing.T) {
	srv := s3test.Fake(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	cfg := via.Config(bucket)
	cfg.Timeout = 500 * time.Millisecond // the idle bound
	raw, err := s3b.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	policy := retry.Policy{Attempts: 4, Base: 5 * time.Millisecond, Max: 20 * time.Millisecond, Elapsed: time.Second, Away: 700 * time.Millisecond}
	b := retry.New(raw, policy, nil)
	ctx := context.Background()
	data := make([]byte, 1<<20)
	rand.Read(data)
	if err := b.Put(ctx, "packs/aa/x", data); err != nil {
		t.Fatal(err)
	}
	const n = 384 << 10 // 3 s at 128 KiB/s

	t.Run("steady", func(t *testing.T) {
		proxy.SetRate(128 << 10)
		defer proxy.SetRate(0)
		start := time.Now()
		buf := make([]byte, n)
		if err := b.GetRangeInto(ctx, "packs/aa/x", 1000, buf); err != nil || !bytes.Equal(buf, data[1000:1000+n]) {
			t.Fatalf("GetRangeInto over a slow link: %v (bytes right: %v)", err, bytes.Equal(buf, data[1000:1000+n]))
		}
		if d := time.Since(start); d < 2*time.Second {
			t.Fatalf("the range took %v: the proxy did not throttle", d)
		}
		if h := b.Health(); h.Failing {
			t.Fatalf("health after a slow read: %+v", h)
		}
	})

	t.Run("stallThenResume", func(t *testing.T) {
		before := proxy.Requests()
		proxy.Next(s3test.Stall)
		start := time.Now()
		got, err := b.GetRange(ctx, "packs/aa/x", 5000, n)
		if err != nil || !bytes.Equal(got, data[5000:5000+n]) {
			t.Fatalf("GetRange after a stalled body: %d bytes, %v", len(got), err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("a stalled body took %v to be given up (idle bound 500 ms)", d)
		}
		if r := proxy.Requests() - before; r != 2 {
			t.Fatalf("%d requests, want 2", r)
		}
	})

	t.Run("stallResumesRange", func(t *testing.T) {
		// A range whose body stalls half-way is asked again for the
		// rest only, not from its start.
		before := len(proxy.Ranges())
		proxy.Next(s3test.Stall)
		buf := make([]byte, n)
		if err := b.GetRangeInto(ctx, "packs/aa/x", 1000, buf); err != nil || !bytes.Equal(buf, data[1000:1000+n]) {
			t.Fatalf("GetRangeInto after a stalled body: %v (bytes right: %v)", err, bytes.Equal(buf, data[1000:1000+n]))
		}
		got := proxy.Ranges()[before:]
		want := []string{fmt.Sprintf("bytes=1000-%d", 1000+n-1), fmt.Sprintf("bytes=%d-%d", 1000+n/2, 1000+n-1)}
		if !slices.Equal(got, want) {
			t.Fatalf("ranges asked: %q, want %q", got, want)
		}
	})

	t.Run("hungFailsInBound", func(t *testing.T) {
		proxy.Always(s3test.Hang)
		defer proxy.Always(s3test.None)
		start := time.Now()
		_, err := raw.GetRange(ctx, "packs/aa/x", 0, n)
		if !errors.Is(err, storage.ErrStalled) || !s3b.Retryable(err) {
			t.Fatalf("GetRange against a hung server: %v, want a retryable stall", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("a hung server failed after %v (idle bound 500 ms)", d)
		}
		start = time.Now()
		if err := b.GetRangeInto(ctx, "packs/aa/x", 0, make([]byte, n)); err == nil {
			t.Fatal("GetRangeInto against a hung server succeeded")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("a hung server failed the retried call after %v (budget 1 s)", d)
		}
		if h := b.Health(); !h.Failing {
			t.Fatalf("health with the server hung: %+v", h)
		}
		// A HEAD (the disk cache's size lookup) cut by the budget is a
		// timeout too: the SDK's "context canceled" it came back as made
		// the mount answer EINTR, and a reader retried for ever.
		_, err = b.Stat(ctx, "packs/aa/x")
		if !errors.Is(err, storage.ErrStalled) || errors.Is(err, context.Canceled) {
			t.Fatalf("Stat against a hung server: %v, want a stall, not a cancel", err)
		}
	})

	t.Run("slowWhileAway", func(t *testing.T) {
		// The storage is known to be away (the last call spent its
		// budget): the Away budget counts time without bytes too, and
		// the first bytes say the storage answers.
		if !b.Health().Failing {
			t.Fatal("health not failing before the test")
		}
		proxy.SetRate(128 << 10)
		defer proxy.SetRate(0)
		buf := make([]byte, n)
		if err := b.GetRangeInto(ctx, "packs/aa/x", 0, buf); err != nil || !bytes.Equal(buf, data[:n]) {
			t.Fatalf("slow GetRangeInto while away: %v", err)
		}
		if h := b.Health(); h.Failing {
			t.Fatalf("health after a slow read: %+v", h)
		}
	})

}

package main

import (
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows a byte-count bar on stderr for work that takes more than a
// moment. It stays silent when stderr is not a terminal or when the output is
// for scripts (json), so piped and machine-read output is never mixed with it.
type progress struct {
	mu    sync.Mutex // guards bar and done
	bar   *progressbar.ProgressBar
	done  int64
	total int64
	desc  string
	start time.Time
	quiet bool
	w     io.Writer
}

// progressDelay is how long work runs before a bar appears, so quick
// commands print nothing extra. LAMINA_PROGRESS_DELAY overrides it (tests).
var progressDelay = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("LAMINA_PROGRESS_DELAY")); err == nil {
		return d
	}
	return 400 * time.Millisecond
}()

func newProgress(desc string, total int64, quiet bool) *progress {
	p := &progress{total: total, desc: desc, start: time.Now(), w: os.Stderr}
	p.quiet = quiet || !term.IsTerminal(int(os.Stderr.Fd())) || os.Getenv("LAMINA_NO_PROGRESS") != ""
	return p
}

// Add records n more bytes done.
func (p *progress) Add(n int64) {
	if p.quiet {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if p.bar == nil {
		if time.Since(p.start) < progressDelay {
			return
		}
		p.bar = progressbar.NewOptions64(p.total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(p.desc),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowCount(),
			progressbar.OptionClearOnFinish(),
		)
		_ = p.bar.Add64(p.done)
		return
	}
	_ = p.bar.Add64(n)
}

// Func returns Add, or nil when quiet (so callers skip the bookkeeping).
func (p *progress) Func() func(int64) {
	if p.quiet {
		return nil
	}
	return p.Add
}

// Done clears the bar.
func (p *progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

package main

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows a byte-count bar on stderr for work that takes more than a
// moment. It stays silent when stderr is not a terminal or when the output is
// for scripts (json), so piped and machine-read output is never mixed with it.
type progress struct {
	mu    sync.Mutex // guards bar, gate and done
	bar   *progressbar.ProgressBar
	gate  *gate // the bar's writer, open once the work has run for progressDelay
	done  int64
	total int64
	desc  string
	start time.Time
	quiet bool
	w     io.Writer
	stop  chan struct{} // ends tick (Done)
	// spinning: every byte is done and a spinner stands for the rest
	spinning bool
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
	if !p.quiet {
		p.stop = make(chan struct{})
		go p.tick(p.stop)
	}
	return p
}

// tick shows the bar once the work has run for progressDelay even if no
// byte came since (an ontology's bytes are read in a moment, its index is
// built after), and keeps it moving until Done.
func (p *progress) tick(stop <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.Add(0)
		}
	}
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
		// The bar counts from the first byte, unseen until the delay: made
		// at the delay with every byte so far, its first rate was over no
		// time at all (2.6 TiB/s).
		p.gate = &gate{w: p.w}
		p.bar = p.newBar(p.total)
	}
	if !p.gate.open.Load() && time.Since(p.start) >= progressDelay {
		p.gate.open.Store(true)
	}
	if !p.spinning && p.total > 0 && p.done >= p.total {
		// Every byte is read and the work goes on (an index being built,
		// a catalog commit): a bar would sit at 100 % or clear itself, so
		// a spinner shows the rest.
		_ = p.bar.Finish()
		p.bar, p.spinning = p.newBar(-1), true
	}
	if p.spinning {
		_ = p.bar.RenderBlank() // a spinner moves with time, not bytes
		return
	}
	_ = p.bar.Add64(n)
}

func (p *progress) newBar(total int64) *progressbar.ProgressBar {
	if total < 0 && p.total > 0 { // the spinner after the bytes
		return progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(p.gate),
			progressbar.OptionSetDescription(p.desc+" (finishing)"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(p.gate),
		progressbar.OptionSetDescription(p.desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionUseIECUnits(true), // GiB, as the summaries say
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
	)
}

// gate passes writes to w once open and drops them before: the bar of
// quick work prints nothing. open is atomic: a spinner renders from the
// bar library's own goroutine, outside progress.mu.
type gate struct {
	w    io.Writer
	open atomic.Bool
}

func (g *gate) Write(b []byte) (int, error) {
	if !g.open.Load() {
		return len(b), nil
	}
	return g.w.Write(b)
}

// SetTotal sets the bytes the work will read once they are known (a
// download's Content-Length): the bar shows the total and a percentage,
// where before it counted bytes only.
func (p *progress) SetTotal(total int64) {
	if p.quiet || total < 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.total = total
	if p.bar != nil && !p.spinning {
		p.bar.ChangeMax64(total)
	}
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
	if p.stop != nil {
		close(p.stop)
		p.stop = nil
	}
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

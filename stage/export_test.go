package stage

import "os"

// MarkClosed records f as closed, as a flush does before it commits: for
// tests that play a daemon killed in the middle of a commit.
func MarkClosed(f *File) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return f.writeJournal(stateClosed)
}

// JournalName is the journal's file in the staging folder.
const JournalName = journalName

// SparePrefix names the emptied staging files kept for reuse.
const SparePrefix = sparePrefix

// SetMaxSpares sets the bound of kept spares for the test.
func SetMaxSpares(t interface{ Cleanup(func()) }, n int) {
	old := maxSpares
	maxSpares = n
	t.Cleanup(func() { maxSpares = old })
}

// FailJournal makes appends to s's journal fail (as on a full disk) until
// the returned func is called.
func FailJournal(s *Stage) (restore func()) {
	l := s.jlog
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
	}
	ro, err := os.Open(l.path) // writes to it fail
	if err != nil {
		panic(err)
	}
	l.f = ro
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.f.Close()
		l.f = nil // the next put opens it for appending
	}
}

// LazyCopies counts the copies of a version's last chunk only (lazycopy.go).
func LazyCopies(s *Stage) int64 { return s.lazyCopies.Load() }

// FailStaging makes writes to f's staging file fail (as on a full disk)
// until the returned func is called.
func FailStaging(f *File) (restore func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rw := f.data
	ro, err := os.Open(rw.Name()) // writes through it fail
	if err != nil {
		panic(err)
	}
	f.data = ro
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		ro.Close()
		f.data = rw
	}
}

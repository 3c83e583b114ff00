package stage

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

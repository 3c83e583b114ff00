package stage

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// States of a staged file in the journal.
const (
	stateOpen   = "open"   // being written; Recover keeps it under lost+found/
	stateClosed = "closed" // a flush started its commit; Recover commits it
	stateDone   = "done"   // committed, waiting for Sync; Recover checks it
	stateGone   = "gone"   // nothing left to recover
)

// journalName is the journal's file in the staging folder. It has no "."
// and no staging file is named like it (ids are hex).
const journalName = "journal"

// compactAfter is the size past which Sync rewrites the journal with only
// the records still live.
const compactAfter = 1 << 20

// journalLog is the staging folder's journal: a line per change of a
// staged file's state, appended with one write(2). A killed daemon loses
// nothing the kernel has, so no fsync is needed for that; and unlike a
// journal file per staged file (the layout before, which Recover still
// reads) a change costs no file to create, rename or remove, which on
// these disks was most of a small file's close (docs/write-bench.md).
type journalLog struct {
	path string

	mu   sync.Mutex         // guards the fields below
	f    *os.File           // open for appending; nil until the first record
	live map[string]journal // id → its last record, unless gone
	size int64              // bytes appended since the file was written whole
}

func newJournalLog(dir string) *journalLog {
	return &journalLog{path: filepath.Join(dir, journalName), live: map[string]journal{}}
}

// put appends js, each the new state of the staged file j.ID, in one
// write(2).
func (l *journalLog) put(js ...journal) error {
	if len(js) == 0 {
		return nil
	}
	var b []byte
	for _, j := range js {
		b = append(j.appendJSON(b), '\n')
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.f == nil {
		if l.f, err = os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return fmt.Errorf("stage: journal: %w", err)
		}
	}
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("stage: journal: %w", err)
	}
	l.size += int64(len(b))
	for _, j := range js {
		if j.State == stateGone {
			delete(l.live, j.ID)
		} else {
			l.live[j.ID] = j
		}
	}
	return nil
}

// appendJSON appends j as json.Marshal writes it, without reflection: a
// file created puts three records (json.Marshal was 2% of the mount's CPU
// per create). Every field of journal must be here: a record without its
// hole (copied_from, head) is recovered with zeros
// (TestJournalRecordAsJSONMarshal sets each field).
func (j journal) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if j.ID != "" {
		b = appendJSONString(append(b, `"id":`...), j.ID)
		b = append(b, ',')
	}
	if j.State != "" {
		b = appendJSONString(append(b, `"state":`...), j.State)
		b = append(b, ',')
	}
	b = appendJSONString(append(b, `"key":`...), j.Key)
	b = strconv.AppendUint(append(b, `,"mode":`...), uint64(j.Mode), 10)
	if j.Manifest != "" {
		b = appendJSONString(append(b, `,"manifest":`...), j.Manifest)
	}
	if j.LazySeq != 0 {
		b = strconv.AppendUint(append(b, `,"lazy_seq":`...), j.LazySeq, 10)
	}
	if j.Base != 0 {
		b = strconv.AppendInt(append(b, `,"base":`...), int64(j.Base), 10)
	}
	if j.Stem != "" {
		b = appendJSONString(append(b, `,"stem":`...), j.Stem)
	}
	if j.Failed {
		b = append(b, `,"failed":true`...)
	}
	if j.CopiedFrom != 0 {
		b = strconv.AppendInt(append(b, `,"copied_from":`...), j.CopiedFrom, 10)
	}
	if j.Head != "" {
		b = appendJSONString(append(b, `,"head":`...), j.Head)
	}
	return append(b, '}')
}

// appendJSONString appends s quoted as json.Marshal quotes it: as it is
// when no byte needs an escape (json.Marshal also escapes <, > and &, and
// replaces invalid UTF-8), else by json.Marshal.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// compact removes the journal when nothing in it is live, and rewrites it
// with the live records once it has grown past compactAfter.
func (l *journalLog) compact() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil || (len(l.live) > 0 && l.size < compactAfter) {
		return nil
	}
	return l.rewriteLocked()
}

// reset makes the journal hold exactly live (Recover, for what it kept).
func (l *journalLog) reset(live map[string]journal) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live = live
	return l.rewriteLocked()
}

// rewriteLocked writes the live records to a new file that replaces the
// journal (synced first: the old records are gone once it is renamed), or
// removes the journal when there are none. Called with mu.
func (l *journalLog) rewriteLocked() error {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	l.size = 0
	if len(l.live) == 0 {
		if err := os.Remove(l.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stage: journal: %w", err)
		}
		return nil
	}
	tmp := l.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("stage: journal: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, j := range l.live {
		err = errors.Join(err, enc.Encode(j))
	}
	err = errors.Join(err, w.Flush(), f.Sync())
	if err == nil {
		err = os.Rename(tmp, l.path)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("stage: journal: %w", err)
	}
	l.f = f // positioned at its end; later writes append
	return nil
}

// readJournal returns the last record of every staged file the journal in
// dir holds, gone ones left out. A line that does not parse (the torn end
// of a journal after the machine stopped) is skipped.
func readJournal(dir string) (map[string]journal, error) {
	out := map[string]journal{}
	f, err := os.Open(filepath.Join(dir, journalName))
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stage: journal: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 0; sc.Scan(); line++ {
		j := journal{pos: line}
		if json.Unmarshal(sc.Bytes(), &j) != nil || j.ID == "" {
			continue
		}
		if j.State == stateGone {
			delete(out, j.ID)
		} else {
			out[j.ID] = j
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("stage: journal: %w", err)
	}
	return out, nil
}

package ontology

import (
	"errors"
	"fmt"
	"io/fs"
)

// Scope is the scope of a synonym, as OBO defines it. Only EXACT synonyms
// are safe for automatic standardisation; the others are suggestions.
type Scope uint8

// The synonym scopes. The zero value is Related because OBO 1.2 reads a
// synonym without a scope as RELATED.
const (
	Related Scope = iota
	Exact
	Broad
	Narrow
	// Symbol is no OBO scope: it marks another official name of the term.
	// A gene table gives one Ensembl id to several NCBI genes (ADAMTSL4-AS1
	// and MCL1); the first row's symbol names the term and each other
	// gene's symbol is a Symbol synonym, which validates and standardizes
	// to itself as a name does. An EXACT synonym would rewrite MCL1 to
	// ADAMTSL4-AS1, another gene.
	Symbol
)

var scopeNames = [...]string{Related: "RELATED", Exact: "EXACT", Broad: "BROAD", Narrow: "NARROW", Symbol: "SYMBOL"}

func (s Scope) String() string {
	if int(s) < len(scopeNames) {
		return scopeNames[s]
	}
	return fmt.Sprintf("Scope(%d)", s)
}

// ParseScope reads "EXACT", "RELATED", "BROAD" or "NARROW" (only the OBO
// scopes: a file cannot claim a Symbol).
func ParseScope(s string) (Scope, bool) {
	for i, n := range scopeNames[:Symbol] {
		if n == s {
			return Scope(i), true
		}
	}
	return 0, false
}

// Synonym is an alternative label of a term.
type Synonym struct {
	Text  string
	Scope Scope
}

// Term is one class of an ontology, or one gene of a gene table.
//
// Parents holds the is_a parents and PartOf the part_of parents (BFO:0000050),
// both as ids that may point outside the source (an ontology imports terms of
// others). Edges that hold only in a taxon (GCI axioms) are not kept.
type Term struct {
	ID         string
	Name       string
	Synonyms   []Synonym
	Parents    []string
	PartOf     []string
	Obsolete   bool
	ReplacedBy []string
	Consider   []string
	AltIDs     []string
	Definition string
	// Namespace is the OBO namespace (GO: biological_process) or, for a
	// gene, its biotype (protein_coding).
	Namespace string
}

// Source is one imported version of an ontology or gene table: everything
// the catalog stores to rebuild an Index without the original file.
type Source struct {
	Entity   string // celltype, gene, or a custom entity name
	Ontology string // CL, UBERON, Ensembl, ...
	Version  string // from the file (data-version, name) or the digest
	Organism string // human, mouse; empty when the ontology is not per organism
	Digest   string // hex SHA-256 of the content: the input's bytes, decompressed when gzip
	Terms    []Term
	// Warnings are problems the parser tolerated (a second name in an OBO 1.2
	// file, say); one line each, with file and line.
	Warnings []string
}

// ErrNotFound is returned when a term, entity or ontology is not known.
var ErrNotFound = fmt.Errorf("ontology: not found: %w", fs.ErrNotExist)

// ErrOrganism is wrapped by Import's error for a per-organism entity
// (developmental_stage) whose organism neither the options nor the file
// tell: a usage error, fixed by giving the organism.
var ErrOrganism = errors.New("ontology: give the organism (human or mouse)")

// ErrAmbiguous is wrapped by an *AmbiguousError: a value names several
// terms where one is needed (Index.Resolve, the hierarchy walks).
var ErrAmbiguous = errors.New("ontology: the name of several terms")

// AmbiguousError says which terms a value names: the live terms that have
// it as their name (or, in a gene table, as a symbol), else the obsolete
// ones (Mondo gives "obsolete familial adenomatous polyposis" to two).
type AmbiguousError struct {
	Value string
	IDs   []string // sorted
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("ontology: %q is the name of %d terms: %s; give one by its id", e.Value, len(e.IDs), listIDs(e.IDs))
}

func (e *AmbiguousError) Unwrap() error { return ErrAmbiguous }

// ErrFormat is wrapped by every error about malformed input.
var ErrFormat = errors.New("ontology: malformed input")

// SyntaxError reports malformed input with the file (or URL) and line where
// it was detected. Line is 0 when the problem is not tied to a line.
type SyntaxError struct {
	File string
	Line int
	Msg  string
	Err  error // underlying cause, if any (io.ErrUnexpectedEOF for a truncated gzip)
}

func (e *SyntaxError) Error() string {
	s := e.File
	if e.Line > 0 {
		s = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	s += ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *SyntaxError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrFormat, e.Err}
	}
	return []error{ErrFormat}
}

func syntaxErr(file string, line int, format string, args ...any) *SyntaxError {
	return &SyntaxError{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

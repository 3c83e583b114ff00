package ontology

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// OBO relation ids that matter here. Relations are normalised to these
// CURIEs through the [Typedef] xrefs and the built-in table, because files
// spell part_of as "part_of", "BFO:0000050" or a local id with an xref.
const partOfID = "BFO:0000050"

var builtinRelations = map[string]string{
	"part_of":       partOfID,
	"has_part":      "BFO:0000051",
	"develops_from": "RO:0002202",
}

// oboFile is what the OBO reader extracts: the header tags Read needs and
// the terms.
type oboFile struct {
	formatVersion string
	dataVersion   string
	ontology      string
	terms         []Term
	warnings      []string
}

type rawRel struct {
	term   int // index in terms
	rel    string
	target string
}

type oboParser struct {
	name   string
	in     *input
	line   int
	strict bool // format-version 1.4 or later: reject what 1.4 forbids

	f                oboFile
	defaultNamespace string
	idspaces         map[string]string // prefix -> expansion
	expansions       map[string]string // expansion -> prefix
	typedefXref      map[string]string // typedef id -> first xref (R:1 -> BFO:0000050)
	rels             []rawRel
	firstLine        map[string]int // term id -> line of its stanza

	// The stanza being read.
	kind         string // "Term", "Typedef", "" for the header, "?" for a skipped stanza
	stanzaLine   int
	cur          Term
	hasID        bool
	nameLine     int
	intersection int
	union        int
	curRels      []rawRel
	typedefID    string
	typedefXrefs []string
}

func parseOBO(in *input, name string) (*oboFile, error) {
	p := &oboParser{
		name:        name,
		in:          in,
		idspaces:    map[string]string{},
		expansions:  map[string]string{},
		typedefXref: map[string]string{},
		firstLine:   map[string]int{},
	}
	for {
		line, ok, err := p.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if err := p.handle(line); err != nil {
			return nil, err
		}
	}
	if err := p.endStanza(); err != nil {
		return nil, err
	}
	p.resolveRelations()
	if p.defaultNamespace != "" {
		for i := range p.f.terms {
			if p.f.terms[i].Namespace == "" {
				p.f.terms[i].Namespace = p.defaultNamespace
			}
		}
	}
	return &p.f, nil
}

// next returns the next logical line without its end-of-line characters,
// joining lines that end in an unescaped backslash (an OBO continuation).
func (p *oboParser) next() (string, bool, error) {
	var acc string
	for {
		s, err := p.in.readLine()
		if err != nil && err != io.EOF {
			return "", false, p.in.readErr(p.line+1, err)
		}
		if s == "" && err == io.EOF {
			if acc != "" {
				return acc, true, nil
			}
			return "", false, nil
		}
		p.line++
		if err := p.in.checkLine(p.name, p.line, s, err == io.EOF); err != nil {
			return "", false, err
		}
		s = strings.TrimRight(s, "\r\n")
		if n := trailingBackslashes(s); n%2 == 1 && err == nil {
			acc += s[:len(s)-1]
			if len(acc) > maxOWLLine || len(acc) > maxLine && !strings.HasPrefix(acc, "owl-axioms:") {
				return "", false, p.in.readErr(p.line, errLongLine)
			}
			continue
		}
		return acc + s, true, nil
	}
}

func trailingBackslashes(s string) int {
	n := 0
	for n < len(s) && s[len(s)-1-n] == '\\' {
		n++
	}
	return n
}

func (p *oboParser) errf(format string, args ...any) error {
	return syntaxErr(p.name, p.line, format, args...)
}

func (p *oboParser) warnf(format string, args ...any) {
	p.f.warnings = append(p.f.warnings, fmt.Sprintf("%s:%d: %s", p.name, p.line, fmt.Sprintf(format, args...)))
}

func (p *oboParser) handle(line string) error {
	t := strings.TrimSpace(line)
	if t == "" || t[0] == '!' {
		return nil
	}
	if t[0] == '[' {
		if !strings.HasSuffix(t, "]") {
			return p.errf("stanza header %q has no closing ']' (truncated file?)", t)
		}
		if err := p.endStanza(); err != nil {
			return err
		}
		switch k := t[1 : len(t)-1]; k {
		case "Term", "Typedef":
			p.kind = k
		default:
			p.kind = "?" // [Instance] and unknown stanzas are skipped
		}
		p.stanzaLine = p.line
		return nil
	}
	if p.kind == "?" {
		return nil
	}
	colon := strings.IndexByte(t, ':')
	if colon <= 0 {
		return p.errf("expected \"tag: value\", got %q", clip(t))
	}
	tag, raw := t[:colon], strings.TrimSpace(t[colon+1:])
	if tag == "owl-axioms" {
		return p.owlAxioms(raw)
	}
	val, quals, err := splitValue(raw)
	if err != nil {
		return p.errf("%s: %v", tag, err)
	}
	switch p.kind {
	case "":
		return p.header(tag, val)
	case "Typedef":
		return p.typedefTag(tag, val)
	default:
		return p.termTag(tag, val, quals)
	}
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}

func (p *oboParser) header(tag, val string) error {
	switch tag {
	case "format-version":
		v := unescapeKnown(val)
		p.f.formatVersion = v
		if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 1.4 {
			p.strict = true
		}
	case "data-version":
		p.f.dataVersion = unescapeKnown(val)
	case "ontology":
		p.f.ontology = unescapeKnown(val)
	case "default-namespace":
		p.defaultNamespace = unescapeKnown(val)
	case "idspace":
		fields := strings.Fields(val)
		if len(fields) < 2 {
			return p.errf("idspace needs a prefix and an expansion")
		}
		prefix, exp := fields[0], fields[1]
		if old, ok := p.idspaces[prefix]; ok && old != exp {
			return p.errf("idspace %s declared twice, as %s and %s", prefix, old, exp)
		}
		if old, ok := p.expansions[exp]; ok && old != prefix {
			return p.errf("idspaces %s and %s both expand to %s", old, prefix, exp)
		}
		p.idspaces[prefix], p.expansions[exp] = exp, prefix
	}
	return nil
}

// owlAxioms checks that the OWL functional syntax in owl-axioms is at least
// balanced. The value is kept whole (no comment or qualifier split) because
// IRIs may contain '!' or '{'.
func (p *oboParser) owlAxioms(raw string) error {
	if err := checkEscapes(raw); err != nil {
		return p.errf("owl-axioms: %v", err)
	}
	s := unescapeKnown(raw)
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '<': // IRI
			j := strings.IndexByte(s[i:], '>')
			if j < 0 {
				return p.errf("owl-axioms: unterminated IRI")
			}
			i += j
		case '"': // literal
			i++
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return p.errf("owl-axioms: unterminated string literal")
			}
		case '#': // comment to end of line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case '(':
			depth++
		case ')':
			depth--
			if depth < 0 {
				return p.errf("owl-axioms: unbalanced ')'")
			}
		}
	}
	if depth != 0 {
		return p.errf("owl-axioms: %d unclosed '(' (invalid OWL functional syntax)", depth)
	}
	return nil
}

func (p *oboParser) typedefTag(tag, val string) error {
	switch tag {
	case "id":
		p.typedefID = unescapeKnown(val)
	case "xref":
		if x := firstToken(val); x != "" {
			p.typedefXrefs = append(p.typedefXrefs, x)
		}
	}
	return nil
}

func (p *oboParser) termTag(tag, val, quals string) error {
	t := &p.cur
	switch tag {
	case "id":
		if p.hasID {
			return p.errf("second id in one stanza")
		}
		id := unescapeKnown(val)
		if id == "" {
			return p.errf("empty id")
		}
		t.ID, p.hasID = id, true
	case "name":
		n := unescapeKnown(val)
		if p.nameLine != 0 {
			if p.strict {
				return p.errf("second name %q (first at line %d); OBO 1.4 allows one", n, p.nameLine)
			}
			p.warnf("second name %q ignored, keeping %q", n, t.Name)
			return nil
		}
		t.Name, p.nameLine = n, p.line
	case "def":
		text, _, err := quoted(val)
		if err != nil {
			if p.strict {
				return p.errf("def: %v", err)
			}
			text = unescapeKnown(val)
		}
		t.Definition = text
	case "synonym", "exact_synonym", "related_synonym", "broad_synonym", "narrow_synonym":
		s, err := p.synonym(tag, val)
		if err != nil {
			return err
		}
		t.Synonyms = append(t.Synonyms, s)
	case "is_a":
		if target := firstToken(val); target != "" && !isGCI(quals) {
			t.Parents = append(t.Parents, target)
		}
	case "relationship":
		f := strings.Fields(val)
		if len(f) < 2 {
			return p.errf("relationship needs a relation and a target")
		}
		if !isGCI(quals) {
			p.curRels = append(p.curRels, rawRel{rel: unescapeKnown(f[0]), target: unescapeKnown(f[1])})
		}
	case "is_obsolete":
		t.Obsolete = strings.TrimSpace(val) == "true"
	case "replaced_by":
		if x := firstToken(val); x != "" {
			t.ReplacedBy = append(t.ReplacedBy, x)
		}
	case "consider":
		if x := firstToken(val); x != "" {
			t.Consider = append(t.Consider, x)
		}
	case "alt_id":
		if x := firstToken(val); x != "" {
			t.AltIDs = append(t.AltIDs, x)
		}
	case "namespace":
		t.Namespace = unescapeKnown(val)
	case "intersection_of":
		if n := len(strings.Fields(val)); n < 1 || n > 2 {
			return p.errf("intersection_of takes a class or a relation and a class, got %d fields", n)
		}
		p.intersection++
	case "union_of":
		p.union++
	}
	return nil
}

// synonym reads `"text" SCOPE [TYPE] [xrefs]` or the OBO 1.0 tags.
func (p *oboParser) synonym(tag, val string) (Synonym, error) {
	text, rest, err := quoted(val)
	if err != nil {
		return Synonym{}, p.errf("%s: %v", tag, err)
	}
	s := Synonym{Text: stripLangTag(text)}
	switch tag {
	case "exact_synonym":
		s.Scope = Exact
		return s, nil
	case "related_synonym":
		return s, nil
	case "broad_synonym":
		s.Scope = Broad
		return s, nil
	case "narrow_synonym":
		s.Scope = Narrow
		return s, nil
	}
	tok := firstToken(rest)
	if sc, ok := ParseScope(tok); ok {
		s.Scope = sc
		return s, nil
	}
	if p.strict {
		return s, p.errf("synonym %q has no scope (EXACT, RELATED, BROAD or NARROW); OBO 1.4 requires one", text)
	}
	s.Scope = Related // OBO 1.2 reads a missing scope as RELATED
	return s, nil
}

// stripLangTag removes a language tag that a synonym carries inside its
// text: Uberon's OBO has `synonym: "Herz@de" RELATED`, the RDF literal
// "Herz"@de flattened, and a user types Herz. The tag is a BCP 47
// language (two or three lower-case letters) with an optional region or
// script ("@pt-BR"), right after the text; "a@b.org" and "x @de" stay.
func stripLangTag(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || s[at-1] == ' ' {
		return s
	}
	lang, sub, hasSub := strings.Cut(s[at+1:], "-")
	if len(lang) < 2 || len(lang) > 3 || strings.Trim(lang, "abcdefghijklmnopqrstuvwxyz") != "" {
		return s
	}
	if hasSub && (len(sub) < 2 || len(sub) > 4 || strings.Trim(sub, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "") {
		return s
	}
	return s[:at]
}

func (p *oboParser) endStanza() error {
	defer p.resetStanza()
	switch p.kind {
	case "Term":
		if !p.hasID {
			return syntaxErr(p.name, p.stanzaLine, "[Term] stanza without id")
		}
		if p.intersection == 1 || p.union == 1 {
			tag := "intersection_of"
			if p.union == 1 {
				tag = "union_of"
			}
			if p.strict {
				return syntaxErr(p.name, p.stanzaLine, "term %s has a single %s; OBO 1.4 needs two or more", p.cur.ID, tag)
			}
			p.f.warnings = append(p.f.warnings, fmt.Sprintf("%s:%d: term %s has a single %s", p.name, p.stanzaLine, p.cur.ID, tag))
		}
		if first, dup := p.firstLine[p.cur.ID]; dup {
			return syntaxErr(p.name, p.stanzaLine, "duplicate term id %s (first defined at line %d)", p.cur.ID, first)
		}
		p.firstLine[p.cur.ID] = p.stanzaLine
		i := len(p.f.terms)
		for _, r := range p.curRels {
			r.term = i
			p.rels = append(p.rels, r)
		}
		p.f.terms = append(p.f.terms, p.cur)
	case "Typedef":
		if p.typedefID == "" {
			return syntaxErr(p.name, p.stanzaLine, "[Typedef] stanza without id")
		}
		if len(p.typedefXrefs) > 0 {
			p.typedefXref[p.typedefID] = p.typedefXrefs[0]
		}
	}
	return nil
}

func (p *oboParser) resetStanza() {
	p.cur = Term{}
	p.hasID, p.nameLine, p.intersection, p.union = false, 0, 0, 0
	p.curRels = p.curRels[:0]
	p.typedefID, p.typedefXrefs = "", nil
}

// resolveRelations runs after the whole file is read because [Typedef]
// stanzas, which say what a relation id means, usually come last.
func (p *oboParser) resolveRelations() {
	for _, r := range p.rels {
		rel := r.rel
		if x, ok := p.typedefXref[rel]; ok {
			rel = x
		}
		if x, ok := builtinRelations[rel]; ok {
			rel = x
		}
		if rel == partOfID {
			t := &p.f.terms[r.term]
			t.PartOf = append(t.PartOf, r.target)
		}
	}
}

func isGCI(quals string) bool {
	if quals == "" {
		return false
	}
	for _, kv := range splitOutsideQuotes(quals, ',') {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.TrimSpace(k) {
		case "gci_filler", "gci_relation", "gci_predicate":
			return true
		}
	}
	return false
}

func oboOntologyName(f *oboFile) string {
	// The header names the ontology ("cl/subsets/blood_and_immune_upper_slim"
	// is CL, though most of its ids are GO) when it names a prefix the ids
	// use; an import module ("mondo/imports/uberon_import") holds the other
	// ontology's terms.
	if head, _, _ := strings.Cut(f.ontology, "/"); head != "" && !strings.Contains(f.ontology, "/imports/") {
		for i := range f.terms {
			if pfx, _, ok := strings.Cut(f.terms[i].ID, ":"); ok && strings.EqualFold(pfx, head) {
				return pfx
			}
		}
	}
	if p := dominantPrefix(f.terms); p != "" {
		return p
	}
	// No CURIE ids at all: "http://example.org/test.owl" or "cl/cl-basic".
	o := f.ontology
	if !strings.Contains(o, "://") {
		o, _, _ = strings.Cut(o, "/")
	}
	return o
}

// dominantPrefix returns the most common id prefix ("CL" in a file that
// also holds a few CP terms).
func dominantPrefix(terms []Term) string {
	counts := map[string]int{}
	best, n := "", 0
	for i := range terms {
		pfx, rest, ok := strings.Cut(terms[i].ID, ":")
		if !ok || pfx == "" || strings.HasPrefix(rest, "//") {
			continue
		}
		counts[pfx]++
		if c := counts[pfx]; c > n || (c == n && pfx < best) {
			best, n = pfx, c
		}
	}
	return best
}

// ---- value tokenising ----

// splitValue separates `value {qualifiers} ! comment`, honouring quotes and
// escapes, and checks every escape. The value is returned still escaped.
func splitValue(raw string) (val, quals string, err error) {
	inQuote := false
	end := len(raw)
	qstart, qend := -1, -1
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\\':
			if i+1 >= len(raw) {
				return "", "", fmt.Errorf("dangling backslash")
			}
			if !knownEscape(raw[i+1]) {
				return "", "", fmt.Errorf("unknown escape \\%c", raw[i+1])
			}
			i++
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == '!':
			end = i
			i = len(raw)
		case c == '{' && qstart < 0:
			j := closingBrace(raw, i)
			if j < 0 {
				return "", "", fmt.Errorf("unterminated qualifier block '{'")
			}
			if rest := strings.TrimSpace(raw[j+1:]); rest == "" || rest[0] == '!' {
				qstart, qend = i, j
				end = i
				i = len(raw)
			}
		}
	}
	if inQuote {
		return "", "", fmt.Errorf("unterminated quoted string (truncated line?)")
	}
	if qstart >= 0 {
		quals = raw[qstart+1 : qend]
	}
	return strings.TrimSpace(raw[:end]), quals, nil
}

func closingBrace(s string, open int) int {
	inQuote := false
	for i := open + 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == '}':
			return i
		}
	}
	return -1
}

func knownEscape(c byte) bool {
	switch c {
	case '"', 'n', '\\', ':', ',', 't', 'W', '{', '}', '[', ']', '!', '(', ')', ' ':
		return true
	}
	return false
}

func checkEscapes(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			if i+1 >= len(s) {
				return fmt.Errorf("dangling backslash")
			}
			if !knownEscape(s[i+1]) {
				return fmt.Errorf("unknown escape \\%c", s[i+1])
			}
			i++
		}
	}
	return nil
}

// unescapeKnown decodes escapes that splitValue has already checked.
func unescapeKnown(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return strings.TrimSpace(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) {
			i++
			switch s[i] {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case 'W':
				c = ' '
			default:
				c = s[i]
			}
		}
		b.WriteByte(c)
	}
	return strings.TrimSpace(b.String())
}

// quoted reads a leading "..." string and returns its unescaped text and
// what follows it.
func quoted(s string) (text, rest string, err error) {
	s = strings.TrimSpace(s)
	if s == "" || s[0] != '"' {
		return "", "", fmt.Errorf("expected a quoted string")
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return unescapeKnown(s[1:i]), strings.TrimSpace(s[i+1:]), nil
		}
	}
	return "", "", fmt.Errorf("unterminated quoted string")
}

// firstToken returns the first whitespace-separated token, unescaped.
func firstToken(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		s = s[:i]
	}
	return unescapeKnown(s)
}

func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			inQuote = !inQuote
		case sep:
			if !inQuote {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

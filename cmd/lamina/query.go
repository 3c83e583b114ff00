package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/ontology"
	"github.com/lamina-bio/lamina/ref"
	"github.com/urfave/cli/v2"
)

// queryFlags are the flags of `lamina ls` that filter by metadata.
func queryFlags() []cli.Flag {
	return []cli.Flag{
		multiFlag("where", "NAME=VALUE, NAME!=VALUE, NAME<VALUE, <=, >, >= (features and key, size, created_at, version, otype, suffix, description, n_observations; suffix= for none); key^=PREFIX; repeat to AND"),
		multiFlag("label", "versions with this label or one below it; repeat to AND"),
		multiFlag("cell-type", "versions annotated with this cell type or any descendant; repeat to AND (both types); for either, name a common ancestor (lymphocyte for T cell or B cell) or run ls once per type"),
		multiFlag("tissue", "versions annotated with this tissue or any descendant; repeat to AND"),
		multiFlag("disease", "versions annotated with this disease or any descendant; repeat to AND"),
		multiFlag("term", "ENTITY=TERM: versions annotated with the term (name, synonym or id) or any descendant; repeat to AND"),
		&cli.BoolFlag{Name: "exact", Usage: "ontology terms and labels alone, without descendants"},
		&cli.BoolFlag{Name: "all-versions", Usage: "match every version, not only the latest of each key"},
		&cli.StringFlag{Name: "order", Value: "key", Usage: "key, created_at or -created_at"},
		organismFlag(),
	}
}

func wantsQuery(c *cli.Context) bool {
	for _, n := range []string{"where", "label", "cell-type", "tissue", "disease", "term", "all-versions"} {
		if c.IsSet(n) {
			return true
		}
	}
	return c.String("order") != "key"
}

// lsQuery answers `lamina ls` with metadata filters.
func lsQuery(c *cli.Context, format string, in *instance.Instance, prefix string) error {
	f := catalog.Filter{Prefix: prefix, Labels: multi(c, "label"), ExactLabels: c.Bool("exact"),
		AllVersions: c.Bool("all-versions"), Order: c.String("order"), Limit: lsLimit(c)}
	exact := c.Bool("exact")
	// base is f.Terms without the ids placeOlder adds, to count the
	// versions found only through them.
	var base [][]string
	var via []string // the other versions that gave ids of older
	addVia := func(vs []string) {
		for _, v := range vs {
			if !slices.Contains(via, v) {
				via = append(via, v)
			}
		}
	}
	addTerms := func(all, older []string) {
		f.Terms = append(f.Terms, slices.Concat(all, older))
		base = append(base, all)
	}
	exclude := map[string]bool{} // versions a term's != leaves out
	var features map[string]catalog.Feature
	var labels []catalog.Label
	for _, w := range multi(c, "where") {
		cond, err := catalog.ParseCond(w)
		if err != nil {
			return exitf(2, "%v", err)
		}
		if ordering(cond.Op) {
			if features == nil {
				if features, err = featureMap(c.Context, in); err != nil {
					return err
				}
			}
			// Both catalogs compare a cat[…] or str feature's stored text
			// byte by byte: cell_type>=lymphocyte found "monocyte", which
			// is no order of cell types. Checked here, before either
			// catalog is asked (Find's own ">= \x01" for != keeps working).
			if ft, ok := features[cond.Field]; ok && (ft.Entity() != "" || ft.Dtype == "str") {
				return exitf(2, "--where %s%s%s: %s is a %s feature, whose values have no order: use = or != (< <= > >= compare int, float, date and datetime features)",
					cond.Field, cond.Op, cond.Values[0], cond.Field, ft.Dtype)
			}
		}
		if cond.Op == "=" || cond.Op == "!=" {
			if features == nil {
				if features, err = featureMap(c.Context, in); err != nil {
					return err
				}
			}
			switch ft := features[cond.Field]; {
			case ft.Entity() == "ULabel":
				// As curate maps a column's values to labels: ignoring case
				// and white space.
				if labels == nil {
					if labels, err = in.Catalog.Labels(c.Context); err != nil {
						return err
					}
				}
				cond.Values = foldedLabels(labels, cond.Values[0])
			case ft.Entity() != "":
				// A term by name, synonym or id, and unless --exact the terms
				// below it.
				entity := entityName(ft.Entity())
				tv, err := termValues(c.Context, in, entity, c.String("organism"), cond.Values[0], exact, cond.Op == "!=", c.App.ErrWriter)
				var nt notTermError
				switch {
				case err == nil:
					cond.Values = tv.values
					addVia(tv.via)
					if cond.Op == "!=" {
						// The complement of = among the versions with
						// the feature: those = finds are left out.
						eq := catalog.Filter{Prefix: prefix, AllVersions: true,
							Where: []catalog.Cond{{Field: cond.Field, Op: "=", Values: tv.values}},
							Terms: [][]string{slices.Concat(tv.ids, tv.older)}}
						vs, err := in.Catalog.Find(c.Context, eq)
						if err != nil {
							return err
						}
						for _, v := range vs {
							exclude[v.UID] = true
						}
						// Any value: a text value is not empty and holds no
						// NUL, so its key is at least "\x01"'s.
						f.Where = append(f.Where, catalog.Cond{Field: cond.Field, Op: ">=", Values: []string{"\x01"}})
						continue
					}
					// The feature holds names, which terms of other
					// sources share (HsapDv's and MmusDv's "adult
					// stage"): the version's terms record must hold
					// one of the ids too.
					addTerms(tv.ids, tv.older)
				case !errors.As(err, &nt):
					return err // no source, or no organism picked
				default:
					// A value stored that is no term (of this source) is
					// found as it is stored.
					if stored, ferr := anyStored(c.Context, in, cond); ferr != nil || !stored {
						return err
					}
				}
			}
		}
		f.Where = append(f.Where, cond)
	}
	if len(f.Labels) > 0 {
		all, err := in.Catalog.Labels(c.Context)
		if err != nil {
			return err
		}
		for i, l := range f.Labels {
			// No label of this name, but one but for case or white space.
			if ls := foldedLabels(all, l); len(ls) == 2 {
				f.Labels[i] = ls[1]
			}
		}
	}
	terms := map[string][]string{}
	for flag, entity := range map[string]string{"cell-type": "celltype", "tissue": "tissue", "disease": "disease"} {
		terms[entity] = append(terms[entity], multi(c, flag)...)
	}
	for _, t := range multi(c, "term") {
		e, v, ok := strings.Cut(t, "=")
		if !ok || e == "" || v == "" {
			return exitf(2, "--term %q: use ENTITY=TERM, e.g. --term celltype=\"T cell\"", t)
		}
		terms[entityName(e)] = append(terms[entityName(e)], v)
	}
	for entity, values := range terms {
		for _, v := range values {
			q, err := termIDs(c.Context, in, entity, c.String("organism"), catalog.Unquote(v), exact, c.App.ErrWriter)
			if err != nil {
				return err
			}
			addTerms(q.ids, q.older)
			addVia(q.via)
		}
	}
	// --after pages by key, as ls without filters does: the keys after
	// it (lsFlagsApply refuses it with another order).
	if after := c.String("after"); after != "" {
		f.Where = append(f.Where, catalog.Cond{Field: "key", Op: ">", Values: []string{after}})
	}
	limit := f.Limit
	f.Limit = plusOne(limit) // ls.go: the hint only when there is more
	if len(exclude) > 0 {
		f.Limit = 0 // the limit holds after leaving them out
	}
	vs, err := in.Catalog.Find(c.Context, f)
	if err != nil {
		return err
	}
	vs = slices.DeleteFunc(vs, func(v catalog.Version) bool { return exclude[v.UID] })
	more := limit > 0 && len(vs) > limit
	if more {
		next := vs[limit]
		vs = vs[:limit]
		// With --all-versions a key has several rows: a page by key
		// never ends between two versions of a key, as the next page
		// (--after KEY) would skip the rest. A key of more versions than
		// the page is listed whole. In another order there is no next
		// page (--after is refused): the first --limit rows, as said.
		if k := vs[len(vs)-1].Key; f.AllVersions && byKey(f.Order) && next.Key == k {
			if n := slices.IndexFunc(vs, func(v catalog.Version) bool { return v.Key == k }); n > 0 {
				vs = vs[:n]
			} else {
				f.Where = append(f.Where[:len(f.Where):len(f.Where)], catalog.Cond{Field: "key", Op: "=", Values: []string{k}})
				f.Limit = 0
				if vs, err = in.Catalog.Find(c.Context, f); err != nil {
					return err
				}
				vs = slices.DeleteFunc(vs, func(v catalog.Version) bool { return exclude[v.UID] })
			}
		}
	}
	older, err := placedOlder(c.Context, in, f, base, vs)
	if err != nil {
		return err
	}
	if err := printVersions(c, format, vs); err != nil {
		return err
	}
	switch {
	case more && byKey(f.Order) && len(vs) > 0:
		fmt.Fprintf(c.App.ErrWriter, "(showing %d; more with --after %q)\n", len(vs), vs[len(vs)-1].Key)
	case more:
		fmt.Fprintf(c.App.ErrWriter, "(showing the first %d; raise --limit for more)\n", limit)
	}
	switch {
	case older > 0 && len(via) > 0:
		fmt.Fprintf(c.App.ErrWriter, "lamina: note: %s listed through another ontology version than the default: annotated with a term obsolete or absent in the default version, placed by its replacement or as %s places it\n",
			plural(older, "version"), strings.Join(via, " or "))
	case older > 0:
		fmt.Fprintf(c.App.ErrWriter, "lamina: note: %s listed through a term obsolete in the default version, placed by its replacement\n",
			plural(older, "version"))
	}
	return nil
}

// ordering reports whether op compares by order (<, <=, >, >=).
func ordering(op string) bool { return op == "<" || op == "<=" || op == ">" || op == ">=" }

// byKey reports whether a query's order is by key.
func byKey(order string) bool { return order == "" || order == "key" }

// placedOlder counts the versions of vs that f finds only through the ids
// placeOlder added to its terms (base is f.Terms without them). vs is f's
// answer, limit applied: f without those ids finds a subset, in the same
// order, so the same limit holds every version of vs it finds.
func placedOlder(ctx context.Context, in *instance.Instance, f catalog.Filter, base [][]string, vs []catalog.Version) (int, error) {
	if len(vs) == 0 || slices.EqualFunc(f.Terms, base, func(a, b []string) bool { return len(a) == len(b) }) {
		return 0, nil
	}
	f.Terms = base
	found, err := in.Catalog.Find(ctx, f)
	if err != nil {
		return 0, err
	}
	n := len(vs)
	for _, v := range vs {
		if slices.ContainsFunc(found, func(w catalog.Version) bool { return w.UID == v.UID }) {
			n--
		}
	}
	return n, nil
}

// entityName maps the X of cat[X] (celltype, CellType, bionty.CellType,
// cell_type, …) to an ontology entity name.
func entityName(x string) string {
	x = strings.TrimPrefix(strings.TrimPrefix(x, "bionty."), "bt.")
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	for _, e := range ontology.Entities() {
		if norm(e.Name) == norm(x) {
			return e.Name
		}
	}
	if norm(x) == "developmentstage" {
		return "developmental_stage"
	}
	return strings.ToLower(x)
}

// resolveTerms finds the standard name a user's value stands for and the
// ids of the terms it names: exact, or through standardization (case,
// synonyms). One term, or every term of a name several have (a symbol on
// several Ensembl ids): picking one would be a guess.
func resolveTerms(x *ontology.Index, entity, value string) (name string, ids []string, err error) {
	name, ids, _, err = resolveTermsWhy(x, entity, value)
	return name, ids, err
}

// resolveTermsWhy is resolveTerms, with how a value that is not a term's
// name or id as typed was mapped (Standardization.Reason: "CL:0000003 is
// obsolete, replaced by CL:0000000", an EXACT synonym), "" for one that is,
// so that annotate can say that it recorded another term than the one
// named.
func resolveTermsWhy(x *ontology.Index, entity, value string) (name string, ids []string, why string, err error) {
	if err := termUTF8(entity, value); err != nil {
		return "", nil, "", err
	}
	if v := x.Validate(value); v.Valid && v.Alt {
		// Valid, but not the term's id: what is recorded is another id,
		// which the note says as it does for a synonym or an obsolete id.
		return v.Name, v.TermIDs(), fmt.Sprintf("%s is a secondary id of %s", value, v.ID), nil
	} else if v.Valid {
		return v.Name, v.TermIDs(), "", nil
	}
	st := x.Standardize(value, ontology.StandardizeOptions{})
	if st.Matched() {
		return st.Name, st.TermIDs(), st.Reason(), nil
	}
	msg := fmt.Sprintf("%q is not %s %s term: %s", value, article(entity), entity, unmatchedReason(st))
	if sg := x.Suggest(value, 3); len(sg) > 0 {
		var names []string
		for _, s := range sg {
			names = append(names, fmt.Sprintf("%q (%s)", s.Name, s.IDList()))
		}
		msg += "; did you mean " + strings.Join(names, " or ") + "?"
	}
	return "", nil, "", notTermError{exitError{msg: msg, code: 1}} // a bad value, not bad usage (2)
}

// termUTF8 refuses a term value that is not UTF-8 as malformed input (exit
// 2), as every other value is, rather than as a term that is not there:
// no ontology holds one.
func termUTF8(entity, value string) error {
	if !utf8.ValidString(value) {
		return catalog.Invalidf("%s term %q: %w", entity, value, ref.ErrNotUTF8)
	}
	return nil
}

// unmatchedReason is st.Reason for a command without --related (ls,
// annotate, show): a RELATED synonym of one term names it without the
// flag.
func unmatchedReason(st ontology.Standardization) string {
	if len(st.Related) == 1 {
		return fmt.Sprintf("only a RELATED synonym of %q (%s)", st.Related[0].Name, st.Related[0].ID)
	}
	return st.Reason()
}

// article is "an" before a word that starts with a vowel sound as the
// entity names do (organism, ethnicity, ulabel), else "a".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiouAEIOU", rune(word[0])) {
		return "an"
	}
	return "a"
}

// notTermError is resolveTerms' answer to a value that names no term.
type notTermError struct{ exitError }

// loadEntity loads the default source of entity; organism picks one where
// the entity has sources for several (gene, developmental_stage).
func loadEntity(ctx context.Context, in *instance.Instance, entity, organism string) (*ontology.Index, error) {
	// Errors say what is missing and how to import it.
	x, _, err := in.LoadOntology(ctx, entity, organism, "")
	return x, err
}

// termIDs returns the ids of the terms value names (see queryTerms) and,
// unless exact, of every term below them; older are the ids placeOlder
// and namedElsewhere add, via the versions besides the default that gave
// some of them.
func termIDs(ctx context.Context, in *instance.Instance, entity, organism, value string, exact bool, warn io.Writer) (termMatch, error) {
	q, _, err := queryTerms(ctx, in, entity, organism, value, exact, false, warn)
	return q, err
}

// termMatch is what a query for a cat[ENTITY] feature matches: values the
// feature holds, and the ids (with their alt ids) one of which the
// version's terms record holds; older are those of the ids placeOlder
// and namedElsewhere add, via the other versions ("CL 2022-12-15") that
// gave some of them.
type termMatch struct {
	values, ids, older, via []string
}

// termValues returns the values a cat[ENTITY] feature can hold for the
// term value names: the value as typed, the ids of termIDs and their alt
// ids (curate keeps a *_ontology_term_id column's ids as ids), and their
// names in every imported version of the entity (for organism): a version
// annotated before a term was renamed ("fat cell", now "adipocyte")
// stores the name of its day.
func termValues(ctx context.Context, in *instance.Instance, entity, organism, value string, exact, not bool, warn io.Writer) (termMatch, error) {
	q, xs, err := queryTerms(ctx, in, entity, organism, value, exact, not, warn)
	if err != nil {
		return termMatch{}, err
	}
	m := termMatch{via: q.via}
	seen := map[*[]string]map[string]bool{} // names apart from ids: a value typed as an id is both
	add := func(to *[]string, s string) {
		if seen[to] == nil {
			seen[to] = map[string]bool{}
		}
		if s != "" && !seen[to][s] {
			seen[to][s] = true
			*to = append(*to, s)
		}
	}
	var names []string
	add(&names, value) // a value stored as typed still matches
	collect := func(ids []string, to *[]string) {
		for _, id := range ids {
			add(to, id)
			for _, x := range xs {
				if d, ok := x.Term(id); ok && d.ID == id {
					add(&names, d.Name)
					for _, alt := range d.AltIDs {
						add(to, alt)
					}
				}
			}
		}
	}
	collect(q.ids, &m.ids)
	collect(q.older, &m.older)
	m.values = slices.Concat(names, m.ids, m.older)
	return m, nil
}

// queryTerms resolves value in the default source of entity, else in
// another imported version (a name a newer version renamed), and returns
// the ids it stands for, the ids placeOlder adds, and the sources loaded,
// the default first (the termMatch has no values). An obsolete term the
// value names stays in the ids beside its replacement: versions annotated
// before it was made obsolete carry its id; warn is told when the
// replacement is searched too (not: for "!=", which lists the versions
// without them).
func queryTerms(ctx context.Context, in *instance.Instance, entity, organism, value string, exact, not bool, warn io.Writer) (q termMatch, xs []*ontology.Index, err error) {
	if err := termUTF8(entity, value); err != nil {
		return termMatch{}, nil, err
	}
	x, rec, err := in.LoadOntology(ctx, entity, organism, "")
	if errors.Is(err, ontology.ErrNotFound) {
		// No such ontology (or version, or organism's source): the term
		// the query names is not there (4), as one the ontology lacks.
		return termMatch{}, nil, codedError{err: err, code: exitNotFound}
	}
	if err != nil {
		return termMatch{}, nil, err
	}
	xs = append([]*ontology.Index{x}, otherVersions(ctx, in, entity, organism, rec)...)
	var first error
	for k, x := range xs {
		ids, root, note, err := resolveQuery(xs[0], x, entity, value, exact, not)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		inDef := k == 0 // ids as the default places them
		if k > 0 {
			fmt.Fprintf(warn, "lamina: note: %q is no %s term of the default version; found in version %s as %s\n", value, entity, x.Source().Version, ids[0])
			note = ""
			// The one term named (ids[0]), when the default knows its id,
			// is asked as by that id from here on: obsolete there, by the
			// default's replacement; live, with the terms below it there.
			// "somatic cell", CL:0002371 in CL 2022-12-15 and obsolete in
			// CL 2026-03-26, listed the 2022 subtree, the id every cell.
			if id := ids[0]; (root != "" || len(ids) == 1) && knownIn(xs[0], id) {
				if ids, root, note, err = resolveQuery(xs[0], xs[0], entity, id, exact, not); err != nil {
					return termMatch{}, nil, err
				}
				inDef = true
			}
		}
		q.ids = ids
		if inDef && !exact && root != "" && len(xs) > 1 {
			q.older, q.via = placeOlder(xs, entity, root, ids, rec.Obsolete > 0)
		}
		if note != "" {
			fmt.Fprintln(warn, "lamina: note:", note)
		}
		more, via := namedElsewhere(xs, k, entity, value, exact, slices.Concat(ids, q.older))
		q.older = append(q.older, more...)
		for _, v := range via {
			if !slices.Contains(q.via, v) {
				q.via = append(q.via, v)
			}
		}
		return q, xs, nil
	}
	// A query for a term no source has finds nothing to look for: not
	// found (4), as a query naming no feature is; annotate keeps 1.
	var nt notTermError
	if errors.As(first, &nt) {
		nt.code = exitNotFound
		return termMatch{}, nil, nt
	}
	return termMatch{}, nil, first
}

// versionName names x's version in a note: "CL 2026-03-26".
func versionName(x *ontology.Index) string {
	return x.Source().Ontology + " " + x.Source().Version
}

// knownIn reports whether x has a term of id, live or obsolete, by its
// own id or an alt id.
func knownIn(x *ontology.Index, id string) bool {
	t, ok := x.Term(id)
	return ok && (t.ID == id || slices.Contains(t.AltIDs, id))
}

// liveIn reports whether id is a live term of x, by its own id.
func liveIn(x *ontology.Index, id string) bool {
	t, ok := x.Term(id)
	return ok && t.ID == id && !t.Obsolete
}

// namedElsewhere returns the ids, beyond have, that value names in the
// versions after xs[k] (of the same organism): a version annotated under
// another gene table or an older version carries the id the value named
// there (MICOS10-NBL1 is ENSG00000270136 in GENCODE, ENSG00000158747 in
// org.Hs.eg.db). Unless exact, the terms below it come along: as the
// default places it when it is live there, else as that version does.
// via names the versions that gave some.
func namedElsewhere(xs []*ontology.Index, k int, entity, value string, exact bool, have []string) (out, via []string) {
	seen := map[string]bool{}
	for _, id := range have {
		seen[id] = true
	}
	for _, x := range xs[k+1:] {
		named, _, _, err := resolveQuery(xs[0], x, entity, value, true, false)
		if err != nil {
			continue
		}
		n := len(out)
		for _, id := range named {
			if seen[id] {
				continue
			}
			in := x
			if liveIn(xs[0], id) {
				in = xs[0]
			}
			below, err := withDescendants(in, entity, id, exact)
			if err != nil {
				below = []string{id}
			}
			for _, d := range below {
				if !seen[d] {
					seen[d] = true
					out = append(out, d)
				}
			}
		}
		if len(out) > n {
			via = append(via, versionName(x))
		}
	}
	return out, via
}

// placeOlder returns the ids, beyond ids (root and the terms below it in
// the default xs[0]), of terms obsolete or absent in the default that
// belong below root all the same, as versions annotated under an older
// version may carry them: an obsolete term whose replacement (followed
// through obsolete ones) is among ids, and, when the default has no live
// replacement, a term that another imported version has live below root
// (via names the versions that gave some). obsolete says whether the
// default has obsolete terms.
func placeOlder(xs []*ontology.Index, entity, root string, ids []string, obsolete bool) (out, via []string) {
	def := xs[0]
	below := make(map[string]bool, len(ids))
	for _, id := range ids {
		below[id] = true
	}
	seen := map[string]bool{}
	add := func(id string) {
		if !below[id] && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	if obsolete { // else a gene table's 10^5 terms are not read for nothing
		for _, t := range def.Source().Terms {
			if t.Obsolete && below[replacement(def, t.ID)] {
				add(t.ID)
			}
		}
	}
	for _, x := range xs[1:] {
		r, ok := x.Term(root)
		if !ok || r.Obsolete {
			continue
		}
		d, err := x.Descendants(r.ID, relFor(entity))
		if err != nil {
			continue
		}
		n := len(out)
		for _, id := range d {
			if t, ok := x.Term(id); ok && !t.Obsolete && replacement(def, id) == "" {
				add(id)
			}
		}
		if len(out) > n {
			via = append(via, versionName(x))
		}
	}
	return out, via
}

// replacement is the live term of x that stands for id (Index.Replacement):
// id's own when it is live, else its replacement, followed through
// obsolete ones; "" when x has no term id or no live replacement.
func replacement(x *ontology.Index, id string) string {
	r, _ := x.Replacement(id)
	return r
}

// otherVersions loads the imported versions of entity besides def (for
// organism), newest import first; one that cannot be loaded is skipped.
func otherVersions(ctx context.Context, in *instance.Instance, entity, organism string, def instance.OntologySource) []*ontology.Index {
	srcs, err := in.OntologySources(ctx)
	if err != nil {
		return nil
	}
	var out []*ontology.Index
	for k := len(srcs) - 1; k >= 0; k-- {
		s := srcs[k]
		if s.Entity != entity || s.Digest == def.Digest || (s.Organism != def.Organism && def.Organism != "") {
			continue
		}
		if x, _, err := in.LoadOntology(ctx, entity, organism, s.Digest); err == nil {
			out = append(out, x)
		}
	}
	return out
}

// resolveQuery is the ids value stands for in x: the term it names and,
// unless exact, every term below it (root, or "" for an obsolete term
// without replacement). For an obsolete term, its own id and its
// replacement's (with the terms below that); note says so. def is the
// default version: a term obsolete in x but live in def is itself alone
// (with the terms below it in def), as in def: x's replacement is
// another term (CL 2026 replaces "somatic cell" by "cell", and a query
// for somatic cells listed every cell). not words the note for "!=".
func resolveQuery(def, x *ontology.Index, entity, value string, exact, not bool) (ids []string, root, note string, err error) {
	st := x.Standardize(value, ontology.StandardizeOptions{})
	if st.Obsolete != "" && x != def && liveIn(def, st.Obsolete) {
		ids, err := withDescendants(def, entity, st.Obsolete, exact)
		return ids, st.Obsolete, "", err
	}
	if st.Obsolete == "" {
		_, named, err := resolveTerms(x, entity, value)
		if err != nil {
			return nil, "", "", err
		}
		// A name several terms have (a symbol on several Ensembl ids)
		// asks for any of them.
		for _, id := range named {
			d, err := withDescendants(x, entity, id, exact)
			if err != nil {
				return nil, "", "", err
			}
			ids = append(ids, d...)
		}
		if len(named) == 1 {
			root = named[0]
		}
		return ids, root, "", nil
	}
	src := x.Source()
	listing, or := "listing versions annotated with", "or"
	if not {
		listing, or = "listing versions not annotated with", "nor"
	}
	if !st.Matched() {
		return []string{st.Obsolete}, "", fmt.Sprintf("%s (in %s %s): %s %s", st.Reason(), src.Ontology, src.Version, listing, st.Obsolete), nil
	}
	root = st.ID
	ids, err = withDescendants(x, entity, st.ID, exact)
	below := ""
	if !exact {
		below = " or a term below it"
	}
	note = fmt.Sprintf("%s is obsolete in %s %s, replaced by %s (%s): %s %s, %s with %s%s",
		st.Obsolete, src.Ontology, src.Version, st.ID, st.Name, listing, st.Obsolete, or, st.ID, below)
	return append([]string{st.Obsolete}, ids...), root, note, err
}

// withDescendants is id and, unless exact, the ids of every term below it.
func withDescendants(x *ontology.Index, entity, id string, exact bool) ([]string, error) {
	ids := []string{id}
	if exact {
		return ids, nil
	}
	d, err := x.Descendants(id, relFor(entity))
	return append(ids, d...), err
}

// anyStored reports whether a live version holds a value cond asks for,
// as stored, without any mapping.
func anyStored(ctx context.Context, in *instance.Instance, cond catalog.Cond) (bool, error) {
	vs, err := in.Catalog.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: cond.Field, Op: "=", Values: cond.Values}},
		AllVersions: true, Limit: 1})
	return len(vs) > 0, err
}

// foldedLabels returns value and, when it is no label, the labels equal
// to it but for case and white space (curate's mapping of a cat[ULabel]
// column), value first.
func foldedLabels(labels []catalog.Label, value string) []string {
	fold := func(s string) string { return strings.ToLower(strings.Join(strings.Fields(s), " ")) }
	out := []string{value}
	k := fold(value)
	for _, l := range labels {
		if l.Name == value {
			return []string{value}
		}
		if fold(l.Name) == k {
			out = append(out, l.Name)
		}
	}
	return out
}

// featureMap returns the catalog's features by name.
func featureMap(ctx context.Context, in *instance.Instance) (map[string]catalog.Feature, error) {
	fs, err := in.Catalog.Features(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]catalog.Feature, len(fs))
	for _, ft := range fs {
		m[ft.Name] = ft
	}
	return m, nil
}

// relFor is the hierarchy a query follows: is_a, and for anatomy and
// developmental stages also part_of (a query for "blood" finds "venous
// blood" and blood parts; HsapDv and MmusDv make every stage is_a "life
// cycle stage" and place it only by part_of: "42-year-old stage" is
// part_of "fifth decade stage", part_of ... "adult stage").
func relFor(entity string) ontology.Relation {
	if entity == "tissue" || entity == "developmental_stage" {
		return ontology.IsA | ontology.PartOf
	}
	return ontology.IsA
}

// multiValue is a repeatable flag whose values are kept whole: unlike
// cli.StringSliceFlag it does not split on commas, which term names
// ("CD4-positive, alpha-beta T cell") contain.
type multiValue []string

func (m *multiValue) Set(s string) error { *m = append(*m, s); return nil }
func (m *multiValue) String() string     { return strings.Join(*m, "; ") }

func multiFlag(name, usage string) *cli.GenericFlag {
	return &cli.GenericFlag{Name: name, Usage: usage, Value: &multiValue{}}
}

// multi returns the values given to a multiFlag.
func multi(c *cli.Context, name string) []string {
	if m, ok := c.Generic(name).(*multiValue); ok && m != nil {
		return *m
	}
	return nil
}

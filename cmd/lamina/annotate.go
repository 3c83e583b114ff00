package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/curate"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/ontology"
	"github.com/lamina-bio/lamina/ref"
	"github.com/urfave/cli/v2"
)

func cmdAnnotate() *cli.Command {
	return &cli.Command{
		Name:      "annotate",
		Usage:     "annotate a version with feature values, labels and ontology terms, or remove them (--remove)",
		ArgsUsage: "KEY[@vN] | UID",
		Description: examples(
			"lamina annotate scrna/pbmc.h5ad --feature donor=D1 --label pilot",
			"lamina annotate scrna/pbmc.h5ad --term celltype=\"T cell\" --term tissue=blood",
			"lamina annotate scrna/pbmc.h5ad --remove --label pilot"),
		Flags: []cli.Flag{
			multiFlag("feature", "NAME=VALUE (repeat); values of cat[ENTITY] features must be terms of that ontology; with --remove, NAME alone removes every value of NAME"),
			multiFlag("label", "a label (repeat)"),
			multiFlag("term", "ENTITY=TERM (repeat): an ontology term by name, synonym or id"),
			&cli.BoolFlag{Name: "remove", Usage: "remove the feature values, labels and terms given (each must be on the version) instead of adding them"},
			&cli.StringFlag{Name: "schema", Usage: "with --remove: the schema curate recorded on the version (so that lamina schema delete can delete it)"},
			organismFlag(), formatFlag("table", "json"),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina annotate KEY[@vN] | UID [--remove] --feature NAME=VALUE --label LABEL --term ENTITY=TERM")
			}
			if c.IsSet("schema") && !c.Bool("remove") {
				return exitf(2, "--schema goes with --remove: lamina curate records the schema a version satisfies")
			}
			if !c.IsSet("feature") && !c.IsSet("label") && !c.IsSet("term") && !c.IsSet("schema") {
				if c.Bool("remove") {
					return exitf(2, "nothing to remove: give --feature, --label, --term or --schema")
				}
				return exitf(2, "nothing to annotate: give --feature, --label or --term")
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			v, err := resolveArg(c.Context, in, c.Args().First()) // get.go
			if err != nil {
				return err
			}
			if c.Bool("remove") {
				return unannotate(c, in, v, format)
			}
			add := catalog.Annotations{Features: map[string][]string{}, Labels: multi(c, "label")}
			var features map[string]catalog.Feature
			for _, fv := range multi(c, "feature") {
				name, value, ok := strings.Cut(fv, "=")
				if !ok || name == "" {
					return exitf(2, "--feature %q: use NAME=VALUE", fv)
				}
				if features == nil {
					fs, err := in.Catalog.Features(c.Context)
					if err != nil {
						return err
					}
					features = map[string]catalog.Feature{}
					for _, f := range fs {
						features[f.Name] = f
					}
				}
				f, ok := features[name]
				if ok && f.Entity() != "" && f.Entity() != "ULabel" {
					entity := entityName(f.Entity())
					x, err := loadEntity(c.Context, in, entity, c.String("organism"))
					if err != nil {
						return err
					}
					std, ids, why, err := resolveTermsWhy(x, entity, value)
					if err != nil {
						return err
					}
					add.Terms = appendTerms(add.Terms, entity, std, ids)
					// stderr only: --format json prints the annotations alone.
					if s := storedValue(x, value, std); s != value {
						what := strings.Join(ids, ", ")
						if len(ids) == 1 && s == ids[0] { // an id stored: name its term
							what = std
						}
						fmt.Fprintf(c.App.ErrWriter, "%s: %q standardized to %q (%s)%s\n", name, value, s, visible(what), because(why))
						value = s
					}
				}
				add.Features[name] = append(add.Features[name], value)
			}
			for _, tv := range multi(c, "term") {
				e, value, ok := strings.Cut(tv, "=")
				if !ok || e == "" || value == "" {
					return exitf(2, "--term %q: use ENTITY=TERM", tv)
				}
				entity := entityName(e)
				x, err := loadEntity(c.Context, in, entity, c.String("organism"))
				if err != nil {
					return err
				}
				std, ids, why, err := resolveTermsWhy(x, entity, value)
				if err != nil {
					return err
				}
				// A value that is no term's name or id as typed records
				// another term than it names (an obsolete term's
				// replacement, above all): say so, as --feature does.
				if why != "" {
					fmt.Fprintf(c.App.ErrWriter, "term %s: %q standardized to %q (%s)%s\n", entity, value, std, strings.Join(ids, ", "), because(why))
				}
				add.Terms = appendTerms(add.Terms, entity, std, ids)
			}
			a, err := in.Catalog.Annotate(c.Context, v.UID, add)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(c.App.Writer, a)
			}
			fmt.Fprintf(c.App.Writer, "annotated %s (%s)\n", v.Ref(), v.UID)
			printAnnotations(c, in.Catalog, a)
			return nil
		},
	}
}

// unannotate is annotate --remove: it takes the feature values, labels
// and terms given off v in one catalog call, all or nothing, and with a
// value of a cat[ENTITY] feature the catalog takes the terms annotate and
// curate recorded beside it, unless a value left on v still names them
// (a term such a value names is refused: ls --where by the value needs it).
// A value that is no term's name or id (an alt id curate kept) names the
// terms resolveValues finds for it; one it cannot resolve keeps every term
// of its entity.
func unannotate(c *cli.Context, in *instance.Instance, v catalog.Version, format string) error {
	ctx := c.Context
	have, err := in.Catalog.Annotations(ctx, v.UID)
	if err != nil {
		return err
	}
	remove := catalog.Annotations{Labels: multi(c, "label"), Schema: c.String("schema")}
	fs, err := in.Catalog.Features(ctx)
	if err != nil {
		return err
	}
	entities := map[string]string{} // feature → entityName of its cat[ENTITY], ontology ones only
	for _, f := range fs {
		if e := f.Entity(); e != "" && e != "ULabel" {
			entities[f.Name] = entityName(e)
		}
	}
	all := map[string]bool{} // features given without a value: every value goes
	for _, fv := range multi(c, "feature") {
		name, value, hasValue := strings.Cut(fv, "=")
		if name == "" || hasValue && value == "" {
			return exitf(2, "--feature %q: use NAME=VALUE, or NAME to remove every value of NAME", fv)
		}
		if remove.Features == nil {
			remove.Features = map[string][]string{}
		}
		if !utf8.ValidString(value) { // malformed (2), as annotate says it, not a value it lacks (4)
			return catalog.Invalidf("value of feature %s %q: %w", name, value, ref.ErrNotUTF8)
		}
		if !hasValue {
			all[name] = true
			remove.Features[name] = nil
			continue
		}
		values := []string{value}
		if entity, ok := entities[name]; ok {
			values = storedSpellings(c, in, entity, value, have.Features[name])
			if len(values) > 1 {
				fmt.Fprintf(c.App.ErrWriter, "%s: removing %s, each naming the term %q names\n", name, quoteAll(values), value)
			}
		}
		for _, value := range values {
			if !all[name] && !slices.Contains(remove.Features[name], value) {
				remove.Features[name] = append(remove.Features[name], value)
			}
		}
	}
	for _, tv := range multi(c, "term") {
		e, value, ok := strings.Cut(tv, "=")
		if !ok || e == "" || value == "" {
			return exitf(2, "--term %q: use ENTITY=TERM", tv)
		}
		entity := entityName(e)
		if err := termUTF8(entity, value); err != nil {
			return err // malformed (2), not a term it lacks (4)
		}
		terms := entityTerms(have.Terms, entity, func(t catalog.Term) bool { return t.Name == value || t.ID == value })
		if len(terms) == 0 { // a synonym, another case, another spelling of the id
			if x, err := loadEntity(ctx, in, entity, c.String("organism")); err == nil {
				if _, ids, err := resolveTerms(x, entity, value); err == nil {
					terms = entityTerms(have.Terms, entity, func(t catalog.Term) bool { return slices.Contains(ids, t.ID) })
				}
			}
		}
		if len(terms) == 0 {
			return exitf(exitNotFound, "%s has no %s term %q (%s)", v.Ref(), entity, value, termsHad(entityTerms(have.Terms, entity, nil), entity))
		}
		remove.Terms = append(remove.Terms, terms...)
	}
	remove.Resolved = resolveValues(c, in, have, remove, entities)
	// The terms a removed value names go with it, unless a value left
	// names them: the catalog decides that in its transaction, from the
	// values there then (a value annotated meanwhile, which Resolved
	// lacks, keeps every term of its entity).
	a, err := in.Catalog.Unannotate(ctx, v.UID, remove)
	if err != nil {
		return err
	}
	named := map[string]bool{}
	for _, t := range slices.Concat(remove.Terms, a.Terms) {
		named[t.ID] = true
	}
	for _, t := range have.Terms {
		if !named[t.ID] {
			fmt.Fprintf(c.App.ErrWriter, "removed term %s %s (%s) with the feature value\n", t.Entity, visible(t.Name), visible(t.ID))
		}
	}
	if format == "json" {
		return writeJSON(c.App.Writer, a)
	}
	fmt.Fprintf(c.App.Writer, "removed from %s (%s)\n", v.Ref(), v.UID)
	if a.IsZero() {
		fmt.Fprintln(c.App.Writer, "no annotations left")
	}
	printAnnotations(c, in.Catalog, a)
	return nil
}

// storedSpellings returns the values of stored (a cat[ENTITY] feature's
// values on a version) that value stands for: value itself if stored, and
// every stored value naming the same term through the ontology (annotate
// stores an id as typed and a name as the standard name, so "B cell",
// CL:0000236 and an alt id may all be on a version, each found by ls by
// either spelling). A value neither stored nor resolving to a stored
// value's term is returned alone, for the catalog to refuse.
func storedSpellings(c *cli.Context, in *instance.Instance, entity, value string, stored []string) []string {
	var out []string
	if slices.Contains(stored, value) {
		out = append(out, value)
	}
	x, err := loadEntity(c.Context, in, entity, c.String("organism"))
	if err != nil {
		return []string{value} // no ontology: the exact text only
	}
	_, ids, err := resolveTerms(x, entity, value)
	if err != nil {
		return []string{value}
	}
	for _, s := range stored {
		if s == value {
			continue
		}
		if _, sids, err := resolveTerms(x, entity, s); err == nil && slices.ContainsFunc(sids, func(id string) bool { return slices.Contains(ids, id) }) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return []string{value}
	}
	return out
}

// quoteAll quotes each of values, comma separated.
func quoteAll(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

// resolveValues says which terms the values of have's cat[ENTITY]
// features name, for the entities whose terms remove may take: entity →
// value → ids, through the entity's ontology (an alt id, a synonym →
// the primary id). The catalog knows no ontology: a value naming no term
// of the version by name or id, which it alone would count as naming any,
// keeps only the terms named here. Values that are a term's name or id
// are left to the catalog, as are values the ontology does not resolve
// (an old name) and entities whose ontology is not imported: those keep
// every term of their entity.
func resolveValues(c *cli.Context, in *instance.Instance, have, remove catalog.Annotations, entities map[string]string) map[string]map[string][]string {
	touched := map[string]bool{}
	for name := range remove.Features {
		if e, ok := entities[name]; ok {
			touched[e] = true
		}
	}
	for _, t := range remove.Terms {
		touched[entityName(t.Entity)] = true
	}
	named := map[string]bool{} // entity + "\x00" + a name or id of one of have's terms
	for _, t := range have.Terms {
		e := entityName(t.Entity)
		named[e+"\x00"+t.Name], named[e+"\x00"+t.ID] = true, true
	}
	var out map[string]map[string][]string
	loaded := map[string]*ontology.Index{}
	for _, name := range slices.Sorted(maps.Keys(have.Features)) {
		e, ok := entities[name]
		if !ok || !touched[e] {
			continue
		}
		for _, x := range have.Features[name] {
			if named[e+"\x00"+x] || out[e][x] != nil {
				continue
			}
			ix, ok := loaded[e]
			if !ok {
				var err error
				if ix, err = loadEntity(c.Context, in, e, c.String("organism")); err != nil {
					ix = nil // not imported: the catalog keeps the entity's terms
				}
				loaded[e] = ix
			}
			if ix == nil {
				break
			}
			if _, ids, err := resolveTerms(ix, e, x); err == nil && len(ids) > 0 {
				if out == nil {
					out = map[string]map[string][]string{}
				}
				if out[e] == nil {
					out[e] = map[string][]string{}
				}
				out[e][x] = ids
			}
		}
	}
	return out
}

// because is the reason resolveTermsWhy gave, as the end of a note.
func because(why string) string {
	if why == "" {
		return ""
	}
	return ": " + why
}

// storedValue is the value annotate stores for value of a cat[ENTITY]
// feature, std its term's standard name (resolveTerms): the value curate
// --standardize writes (curate.StandardTerm, curate.StandardValue). A
// term's name or primary id stays as typed, so a value given as an id
// stays an id (a *_ontology_term_id feature held the name "B cell" for
// CL:0000236); an alt id, one with stray white space and an obsolete id
// become the term's id; any other value is std.
func storedValue(x *ontology.Index, value, std string) string {
	val, st := curate.StandardTerm(x, value, ontology.StandardizeOptions{})
	if val.Valid {
		return value
	}
	if st.Matched() {
		return curate.StandardValue(st)
	}
	return std
}

// entityTerms returns the terms of entity that match (all of them for nil).
func entityTerms(terms []catalog.Term, entity string, match func(catalog.Term) bool) []catalog.Term {
	var out []catalog.Term
	for _, t := range terms {
		if entityName(t.Entity) == entity && (match == nil || match(t)) {
			out = append(out, t)
		}
	}
	return out
}

// termsHad says which terms of entity a version has, the first maxPrinted.
func termsHad(terms []catalog.Term, entity string) string {
	if len(terms) == 0 {
		return fmt.Sprintf("it has no %s terms", entity)
	}
	var names []string
	for _, t := range terms[:min(len(terms), maxPrinted)] {
		names = append(names, fmt.Sprintf("%q (%s)", t.Name, t.ID))
	}
	out := fmt.Sprintf("its %s terms: %s", entity, strings.Join(names, ", "))
	if n := len(terms) - maxPrinted; n > 0 {
		out += fmt.Sprintf(", … and %d more", n)
	}
	return visible(out)
}

// appendTerms adds the terms ids of entity, whose name is name: a name of
// several terms (a symbol on several Ensembl ids) records every one, so
// a query by any of their ids finds the version.
func appendTerms(terms []catalog.Term, entity, name string, ids []string) []catalog.Term {
	for _, id := range ids {
		terms = append(terms, catalog.Term{Entity: entity, ID: id, Name: name})
	}
	return terms
}

// maxPrinted is how many values of a feature, labels and terms
// printAnnotations lists: a curated gene column has 60,000 values, which
// annotate --label printed on one line (--format json has them all).
const maxPrinted = 20

// printAnnotations writes a's features, labels and terms as show does,
// the first maxPrinted of each list; cat gives the features' dtypes
// (valueOrder).
func printAnnotations(c *cli.Context, cat catalog.Annotator, a catalog.Annotations) {
	printAnnotationsNow(c, cat, a, nil)
}

// printAnnotationsNow is printAnnotations with each term under the name
// now gives it (show: the default ontology version's), when that is not
// the name recorded, which follows ("annotated as").
func printAnnotationsNow(c *cli.Context, cat catalog.Annotator, a catalog.Annotations, now func(catalog.Term) string) {
	w := c.App.Writer
	a = valueOrder(c.Context, cat, a)
	names := make([]string, 0, len(a.Features))
	for n := range a.Features {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		vals := a.Features[n] // an old -0 reads as 0 already (catalog.OldNegZeroAsZero)
		fmt.Fprintf(w, "%-15s %s = %s\n", "feature", visible(n), firstOf(vals))
	}
	if len(a.Labels) > 0 {
		fmt.Fprintf(w, "%-15s %s\n", "labels", firstOf(a.Labels))
	}
	for _, t := range a.Terms[:min(len(a.Terms), maxPrinted)] {
		name, was := t.Name, ""
		if now != nil {
			if n := now(t); n != "" && n != t.Name {
				name, was = n, fmt.Sprintf("; annotated as %q", t.Name)
			}
		}
		fmt.Fprintf(w, "%-15s %s %s (%s%s)\n", "term", t.Entity, visible(name), visible(t.ID), visible(was))
	}
	if n := len(a.Terms) - maxPrinted; n > 0 {
		fmt.Fprintf(w, "%-15s … and %d more (--format json lists them all)\n", "term", n)
	}
	if a.Schema != "" {
		fmt.Fprintf(w, "%-15s %s\n", "schema", visible(a.Schema))
	}
}

// valueOrder returns a with the values of each int, float, date and
// datetime feature in the order of their values, for people: a record
// keeps them in text order, in which batch = 10; 7; 9 and a datetime with
// a fraction of a second came before the whole second. The order is the
// index keys' (catalog.Normalize), by which ls --where compares. The
// record and --format json keep the stored order; without the features'
// dtypes (an error reading them) a is printed as it is.
func valueOrder(ctx context.Context, cat catalog.Annotator, a catalog.Annotations) catalog.Annotations {
	if len(a.Features) == 0 || cat == nil {
		return a
	}
	fs, err := cat.Features(ctx)
	if err != nil {
		return a
	}
	features := maps.Clone(a.Features)
	for _, f := range fs {
		vals, ok := features[f.Name]
		if !ok || len(vals) < 2 {
			continue
		}
		switch f.Dtype {
		case "int", "float", "date", "datetime":
		default:
			continue
		}
		keys := make(map[string][]byte, len(vals))
		for _, v := range vals {
			if _, k, err := catalog.Normalize(f.Dtype, v); err == nil {
				keys[v] = k
			}
		}
		sorted := slices.Clone(vals)
		slices.SortStableFunc(sorted, func(x, y string) int {
			kx, okx := keys[x]
			ky, oky := keys[y]
			switch {
			case okx && oky:
				return bytes.Compare(kx, ky)
			case okx != oky: // a value that does not read as its dtype goes last
				if okx {
					return -1
				}
				return 1
			}
			return 0
		})
		features[f.Name] = sorted
	}
	a.Features = features
	return a
}

// firstOf joins the first maxPrinted of vs, saying how many more there are.
// The separator is "; ", not ", ": term names have commas ("CD4-positive,
// alpha-beta T cell"); a value with a semicolon of its own is quoted.
func firstOf(vs []string) string {
	parts := make([]string, min(len(vs), maxPrinted))
	for i := range parts {
		parts[i] = vs[i]
		if strings.Contains(vs[i], ";") || strings.HasPrefix(vs[i], `"`) {
			parts[i] = strconv.Quote(vs[i])
		}
	}
	out := visible(strings.Join(parts, "; "))
	if n := len(vs) - maxPrinted; n > 0 {
		out += fmt.Sprintf("; … and %d more", n)
	}
	return out
}

package catalog

import (
	"fmt"
	"slices"
	"strings"
)

// Uses is what keeps a feature, label or schema from being deleted
// (Annotator.DeleteFeature, DeleteLabel, DeleteSchema): how many records
// use it, and one of each as an example. Every store counts the same
// things and says it with Err, so that both refuse alike.
type Uses struct {
	// Versions annotated with it, trashed ones too (restore brings them
	// back with their annotations): a feature's values, a label (itself
	// or as a value of a cat[ULabel] feature), a schema curate recorded.
	Versions int
	Version  Version // one of them: Users[0]
	// Users are the first MaxUsers of them by uid, which the refusal
	// names: `ls --where` skips the trash, and `--where` with `--trash`
	// is refused, so nothing else listed the trashed ones.
	Users []Version
	// Labelled is, for a label, whether Version has the label itself;
	// else it has it as a value of Feature.
	Labelled bool
	// Feature is, for a label, a cat[ULabel] feature of which it is a
	// value on a version (on the least uid's, by feature name), "" if
	// on none.
	Feature string
	Labels  int    // labels directly under it (a label)
	Label   string // one of them
	Schemas int    // schemas that list it (a feature)
	Schema  string // one of them
}

// MaxUsers is how many of the versions that use a feature, label or
// schema a refusal to delete it names (Uses.Users).
const MaxUsers = 20

// FirstUIDs returns the first MaxUsers of uids in byte order (as
// PostgreSQL's COLLATE "C" sorts them).
func FirstUIDs(uids map[string]bool) []string {
	out := make([]string, 0, len(uids))
	for u := range uids {
		out = append(out, u)
	}
	slices.Sort(out)
	return out[:min(len(out), MaxUsers)]
}

// None reports whether nothing uses it.
func (u Uses) None() bool { return u.Versions == 0 && u.Labels == 0 && u.Schemas == 0 }

// Err is nil when nothing uses the kind ("feature", "label", "schema")
// called name, else an ErrConflict that says what uses it, with an
// example of each, and what to run first.
func (u Uses) Err(kind, name string) error {
	if u.None() {
		return nil
	}
	var what, fix []string
	if u.Versions > 0 {
		ex, arg := u.Version.Ref(), u.Version.Ref()
		if u.Version.Trashed {
			ex, arg = ex+" in the trash", u.Version.UID
		}
		n := countOf(u.Versions, "version")
		switch {
		case kind == "feature":
			what = append(what, fmt.Sprintf("%s %s values of it (e.g. %s)", n, hasHave(u.Versions), ex))
			fix = append(fix, fmt.Sprintf("lamina annotate %s --remove --feature %s", arg, argQuote(name)))
		case kind == "label" && u.Labelled && u.Feature != "":
			what = append(what, fmt.Sprintf("it is on %s (e.g. %s; on some as a value of feature %s)", n, ex, u.Feature))
			fix = append(fix, fmt.Sprintf("lamina annotate %s --remove --label %s (--feature %s where it is a value of %s)", arg, argQuote(name), argQuote(u.Feature+"="+name), u.Feature))
		case kind == "label" && !u.Labelled:
			what = append(what, fmt.Sprintf("it is on %s (e.g. %s, as a value of feature %s)", n, ex, u.Feature))
			fix = append(fix, fmt.Sprintf("lamina annotate %s --remove --feature %s", arg, argQuote(u.Feature+"="+name)))
		case kind == "label":
			what = append(what, fmt.Sprintf("it is on %s (e.g. %s)", n, ex))
			fix = append(fix, fmt.Sprintf("lamina annotate %s --remove --label %s", arg, argQuote(name)))
		default:
			what = append(what, fmt.Sprintf("%s %s curated with it (e.g. %s)", n, wasWere(u.Versions), ex))
			fix = append(fix, fmt.Sprintf("lamina annotate %s --remove --schema %s", arg, argQuote(name)))
		}
	}
	if u.Labels > 0 {
		what = append(what, fmt.Sprintf("it is the parent of %s (e.g. %s)", countOf(u.Labels, "label"), u.Label))
		fix = append(fix, fmt.Sprintf("lamina label delete %s (or move it: lamina label create %s --parent OTHER --move)", argQuote(u.Label), argQuote(u.Label)))
	}
	if u.Schemas > 0 {
		what = append(what, fmt.Sprintf("%s %s it (e.g. %s)", countOf(u.Schemas, "schema"), listList(u.Schemas), u.Schema))
		fix = append(fix, fmt.Sprintf("lamina schema delete %s, or lamina schema create %s again without it", argQuote(u.Schema), argQuote(u.Schema)))
	}
	each := ""
	if u.Versions > 1 || u.Labels > 1 || u.Schemas > 1 {
		each = ", for each of them"
	}
	return errorf(ErrConflict, "%s %q is in use, not deleted: %s; first run %s%s%s",
		kind, name, strings.Join(what, "; "), strings.Join(fix, "; and "), each, u.usersList())
}

// usersList names the versions of Users, one a line, a trashed one by its
// uid (what annotate takes of it), when there is more than the example;
// and how many more there are.
func (u Uses) usersList() string {
	if u.Versions < 2 || len(u.Users) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nthe versions, one in the trash by its uid:")
	for _, v := range u.Users {
		if v.Trashed {
			fmt.Fprintf(&b, "\n  %s (%s, in the trash)", v.UID, v.Ref())
		} else {
			fmt.Fprintf(&b, "\n  %s", v.Ref())
		}
	}
	if n := u.Versions - len(u.Users); n > 0 {
		fmt.Fprintf(&b, "\n  … and %d more (a delete refused again names them)", n)
	}
	return b.String()
}

func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func hasHave(n int) string {
	if n == 1 {
		return "has"
	}
	return "have"
}

func wasWere(n int) string {
	if n == 1 {
		return "was"
	}
	return "were"
}

func listList(n int) string {
	if n == 1 {
		return "lists"
	}
	return "list"
}

// argQuote quotes s for a shell when it holds anything but letters,
// digits and _ . - = : / @.
func argQuote(s string) string {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_.-=:/@", c)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

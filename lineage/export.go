package lineage

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// Formats Write knows.
var Formats = []string{"text", "dot", "mermaid", "json", "prov-json", "html"}

// Write writes g in format (one of Formats).
func Write(w io.Writer, g *Graph, format string) error {
	switch format {
	case "", "text":
		return WriteText(w, g)
	case "dot":
		return WriteDOT(w, g)
	case "mermaid":
		return WriteMermaid(w, g)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(g)
	case "prov-json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(PROV(g))
	case "html":
		return WriteHTML(w, g)
	}
	return fmt.Errorf("unknown format %q; use one of %s", format, strings.Join(Formats, ", "))
}

// notLatest says why a version node is not its key's latest: a trashed
// version (a Snakemake temp() output, an rm) may be the newest there is.
func (n *Node) notLatest() string {
	if n.Purged {
		return "deleted for good"
	}
	if n.Version != nil && n.Version.Trashed {
		return "in the trash"
	}
	return "not latest"
}

// describe is one node's line in the text format.
func (g *Graph) describe(id string) string {
	n := g.Nodes[id]
	if n.Version != nil {
		s := n.Version.Ref() + "  " + n.ID
		if !n.Latest {
			s += "  (" + n.notLatest() + ")"
		}
		return s
	}
	r := n.Run
	s := fmt.Sprintf("run %s  %s", n.ID, n.Label()[:strings.LastIndex(n.Label(), " (run")])
	s += "  " + r.Status
	if r.Signal != "" {
		s += " (killed by " + r.Signal + ")"
	} else if r.ExitCode != nil && *r.ExitCode != 0 {
		s += fmt.Sprintf(" (exit %d)", *r.ExitCode)
	}
	s += "  " + r.StartedAt.Local().Format(time.DateTime)
	return s
}

func (g *Graph) index() (in, out map[string][]string) {
	in, out = map[string][]string{}, map[string][]string{}
	for _, e := range g.Edges {
		out[e.From] = append(out[e.From], e.To)
		in[e.To] = append(in[e.To], e.From)
	}
	return in, out
}

// WriteText writes g as two indented trees: upstream (what the root came
// from) and downstream (what came from it); a direction the walk skipped
// is left out. A node met again on the same path is marked and not
// expanded, so cycles end; one already expanded elsewhere in the tree is
// marked "(shown above)" and not expanded again: a version several runs
// reproduced (identical reruns) expanded each run's whole upstream, and
// a chain of 4 steps rerun 15 times printed 209,733 lines (audit 54). The
// run that made a version comes before those that reproduced it.
func WriteText(w io.Writer, g *Graph) error {
	in, out := g.index()
	again := map[[2]string]bool{} // Reproduced edges: from, to
	for _, e := range g.Edges {
		if e.Kind == Reproduced {
			again[[2]string{e.From, e.To}] = true
		}
	}
	var b strings.Builder
	b.WriteString(g.describe(g.Root) + "\n")
	var tree func(id string, next map[string][]string, arrow string, indent int, path, shown map[string]bool)
	tree = func(id string, next map[string][]string, arrow string, indent int, path, shown map[string]bool) {
		cs := slices.Clone(next[id])
		// A run's versions by key, then number (as runs show lists
		// inputs); a version's runs by start: they came by uid.
		slices.SortFunc(cs, g.cmpNodes)
		if arrow == "<-" {
			slices.SortStableFunc(cs, func(a, b string) int { // the maker first
				return cmpBool(again[[2]string{a, id}], again[[2]string{b, id}])
			})
		}
		for _, c := range cs {
			fmt.Fprintf(&b, "%s%s %s", strings.Repeat("  ", indent), arrow, g.describe(c))
			switch {
			case arrow == "<-" && again[[2]string{c, id}]:
				b.WriteString("  (also produced it: identical bytes)")
			case arrow == "->" && again[[2]string{id, c}]:
				b.WriteString("  (reproduced: identical bytes)")
			}
			if path[c] {
				b.WriteString("  (cycle)\n")
				continue
			}
			if shown[c] && len(next[c]) > 0 {
				b.WriteString("  (shown above)\n")
				continue
			}
			b.WriteString("\n")
			shown[c], path[c] = true, true
			tree(c, next, arrow, indent+1, path, shown)
			delete(path, c)
		}
	}
	switch {
	case g.NoUp: // not walked: nothing to say
	case len(in[g.Root]) > 0:
		b.WriteString("upstream:\n")
		tree(g.Root, in, "<-", 1, map[string]bool{g.Root: true}, map[string]bool{})
	default:
		b.WriteString("upstream: none recorded\n")
	}
	switch {
	case g.NoDown:
	case len(out[g.Root]) > 0:
		b.WriteString("downstream:\n")
		tree(g.Root, out, "->", 1, map[string]bool{g.Root: true}, map[string]bool{})
	default:
		b.WriteString("downstream: none recorded\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cmpNodes orders nodes: versions by key (bytewise), then number, runs by
// start time; then by id.
func (g *Graph) cmpNodes(a, b string) int {
	na, nb := g.Nodes[a], g.Nodes[b]
	switch {
	case na == nil || nb == nil:
	case na.Version != nil && nb.Version != nil:
		if c := strings.Compare(na.Version.Key, nb.Version.Key); c != 0 {
			return c
		}
		if na.Version.Version != nb.Version.Version {
			return na.Version.Version - nb.Version.Version
		}
	case na.Run != nil && nb.Run != nil:
		if c := na.Run.StartedAt.Compare(nb.Run.StartedAt); c != 0 {
			return c
		}
	}
	return strings.Compare(a, b)
}

// cmpBool orders false before true.
func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// ids returns the node ids in a stable order: versions by ref, then runs by
// start time.
func (g *Graph) ids() []string {
	ids := make([]string, 0, len(g.Nodes))
	for id := range g.Nodes {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := g.Nodes[ids[i]], g.Nodes[ids[j]]
		if (a.Version == nil) != (b.Version == nil) {
			return a.Version != nil
		}
		if a.Version != nil {
			return a.Version.Ref() < b.Version.Ref()
		}
		if !a.Run.StartedAt.Equal(b.Run.StartedAt) {
			return a.Run.StartedAt.Before(b.Run.StartedAt)
		}
		return a.ID < b.ID
	})
	return ids
}

func dotQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}

// WriteDOT writes g for Graphviz: versions are notes, runs boxes; a
// version that is no longer latest is dashed, one deleted for good also
// grey, a failed run red.
func WriteDOT(w io.Writer, g *Graph) error {
	var b strings.Builder
	b.WriteString("digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\", fontsize=10];\n")
	for _, id := range g.ids() {
		n := g.Nodes[id]
		if n.Version != nil {
			// Each attribute once: Graphviz takes the last, other readers
			// of DOT may not.
			fill, color, more := "filled", "#cfe8ff", ""
			if !n.Latest {
				fill += ",dashed"
			}
			if n.Purged {
				color, more = "#e0e0e0", `, color="#888888", fontcolor="#555555"`
			}
			style := fmt.Sprintf(`shape=note, style="%s", fillcolor="%s"%s`, fill, color, more)
			if id == g.Root {
				style += ", penwidth=2"
			}
			label := n.Version.Ref() + "\n" + short(id)
			if n.Purged {
				label += "\n(deleted for good)"
			}
			fmt.Fprintf(&b, "  %s [label=%s, %s];\n", dotQuote(id), dotQuote(label), style)
		} else {
			color := "#ffe3b3"
			if n.Run.Status == "failed" {
				color = "#ffb3b3"
			}
			fmt.Fprintf(&b, "  %s [label=%s, shape=box, style=\"rounded,filled\", fillcolor=%s];\n", dotQuote(id), dotQuote(n.Label()), dotQuote(color))
		}
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "  %s -> %s [label=%s];\n", dotQuote(e.From), dotQuote(e.To), dotQuote(e.Kind))
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// mermaidText escapes a label's text as Mermaid's entity codes (#name; or
// #decimal;), which it turns into HTML entities: a label is HTML, so a key
// `a<e>.txt` lost `<e>` as a tag, and `&`, or a `#` that starts a code in
// the text itself, were taken for entities.
var mermaidText = strings.NewReplacer(`#`, "#35;", `"`, "#quot;", `<`, "#lt;", `>`, "#gt;", `&`, "#amp;")

// WriteMermaid writes g as a Mermaid flowchart.
func WriteMermaid(w io.Writer, g *Graph) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	name := map[string]string{}
	for i, id := range g.ids() {
		name[id] = fmt.Sprintf("n%d", i)
		n := g.Nodes[id]
		label := mermaidText.Replace(n.Label())
		if n.Version != nil {
			label += "<br/>" + short(id)
			if !n.Latest {
				label += " (" + n.notLatest() + ")"
			}
			fmt.Fprintf(&b, "  %s[\"%s\"]\n", name[id], label)
		} else {
			fmt.Fprintf(&b, "  %s([\"%s\"])\n", name[id], label)
		}
	}
	for _, e := range g.Edges {
		fmt.Fprintf(&b, "  %s -->|%s| %s\n", name[e.From], e.Kind, name[e.To])
	}
	b.WriteString("  classDef run fill:#ffe3b3;\n  classDef version fill:#cfe8ff;\n")
	if slices.ContainsFunc(g.ids(), func(id string) bool { return g.Nodes[id].Purged }) { // deleted for good: grey, dashed
		b.WriteString("  classDef purged fill:#e0e0e0,stroke:#888,stroke-dasharray:4 3,color:#555;\n")
	}
	for _, id := range g.ids() {
		class := g.Nodes[id].Kind
		if g.Nodes[id].Purged {
			class = "purged"
		}
		fmt.Fprintf(&b, "  class %s %s;\n", name[id], class)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// PROV returns g as a W3C PROV-JSON document: an entity per version, an
// activity per run, an agent per user, and used, wasGeneratedBy (with
// lamina:reproduced for a Reproduced edge), wasAssociatedWith and
// wasInformedBy (a child run by its parent).
func PROV(g *Graph) map[string]any {
	entity, activity, agent := map[string]any{}, map[string]any{}, map[string]any{}
	used, gen, assoc, informed := map[string]any{}, map[string]any{}, map[string]any{}, map[string]any{}
	for _, id := range g.ids() {
		n := g.Nodes[id]
		if v := n.Version; v != nil {
			e := map[string]any{
				"prov:label": v.Ref(), "prov:type": qname("lamina:Version"), "lamina:key": v.Key,
				"lamina:version": v.Version, "lamina:digest": v.Digest.String(), "lamina:latest": n.Latest,
			}
			if n.Purged { // what a run's record keeps of it: no digest
				delete(e, "lamina:digest")
				e["lamina:purged"] = true
				if n.PurgedAt != nil {
					e["lamina:purgedAt"] = n.PurgedAt.Format(time.RFC3339Nano)
				}
			}
			entity["lamina:"+id] = e
			continue
		}
		r := n.Run
		a := map[string]any{"prov:label": n.Label(), "prov:type": qname("lamina:Run"), "prov:startTime": r.StartedAt.Format(time.RFC3339Nano), "lamina:status": r.Status}
		if r.FinishedAt != nil {
			a["prov:endTime"] = r.FinishedAt.Format(time.RFC3339Nano)
		}
		if n.Trans != nil && n.Trans.UID != "" {
			a["lamina:transform"] = n.Trans.Name
			if !n.Trans.Digest.IsZero() {
				a["lamina:transformDigest"] = n.Trans.Digest.String()
			}
		}
		activity["lamina:"+id] = a
		if r.User != "" {
			agent["lamina:user/"+r.User] = map[string]any{"prov:type": qname("prov:Person"), "prov:label": r.User}
			assoc["_:assoc_"+id] = map[string]any{"prov:activity": "lamina:" + id, "prov:agent": "lamina:user/" + r.User}
		}
		if r.Parent != "" {
			if _, ok := g.Nodes[r.Parent]; !ok {
				activity["lamina:"+r.Parent] = map[string]any{"prov:type": qname("lamina:Run")}
			}
			informed["_:inf_"+id] = map[string]any{"prov:informed": "lamina:" + id, "prov:informant": "lamina:" + r.Parent}
		}
	}
	for i, e := range g.Edges {
		if e.Kind == Used {
			used[fmt.Sprintf("_:used%d", i)] = map[string]any{"prov:activity": "lamina:" + e.To, "prov:entity": "lamina:" + e.From}
		} else {
			g := map[string]any{"prov:entity": "lamina:" + e.To, "prov:activity": "lamina:" + e.From}
			if e.Kind == Reproduced {
				g["lamina:reproduced"] = true // identical bytes, after the run that made it
			}
			gen[fmt.Sprintf("_:gen%d", i)] = g
		}
	}
	doc := map[string]any{
		"prefix": map[string]any{"lamina": "https://lamina.bio/ns#"},
		"entity": entity, "activity": activity,
	}
	for k, m := range map[string]map[string]any{"agent": agent, "used": used, "wasGeneratedBy": gen, "wasAssociatedWith": assoc, "wasInformedBy": informed} {
		if len(m) > 0 {
			doc[k] = m
		}
	}
	return doc
}

// qname is a PROV-JSON typed literal of type prov:QUALIFIED_NAME: a bare
// string would be read as an xsd:string, not as the type it names.
func qname(n string) map[string]string {
	return map[string]string{"$": n, "type": "prov:QUALIFIED_NAME"}
}

// Layout places each node in a column by its longest path from a source
// (cycle safe: at most len(nodes) rounds) and in a row by order.
func Layout(g *Graph) (col, row map[string]int) {
	col, row = map[string]int{}, map[string]int{}
	ids := g.ids()
	for round := 0; round < len(ids); round++ {
		changed := false
		for _, e := range g.Edges {
			if col[e.To] < col[e.From]+1 && col[e.From]+1 < len(ids) {
				col[e.To] = col[e.From] + 1
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	n := map[int]int{}
	for _, id := range ids {
		row[id] = n[col[id]]
		n[col[id]]++
	}
	return col, row
}

// WriteHTML writes one self-contained page (no script, no network) with the
// graph drawn as inline SVG by Layout, and the details of every node.
func WriteHTML(w io.Writer, g *Graph) error {
	col, row := Layout(g)
	const cw, ch, nw, nh = 260, 80, 210, 46
	maxC, maxR := 0, 0
	for id := range g.Nodes {
		maxC, maxR = max(maxC, col[id]), max(maxR, row[id])
	}
	var b strings.Builder
	root := g.Nodes[g.Root]
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Lineage of %s</title>\n", html.EscapeString(root.Label()))
	b.WriteString(`<style>body{font-family:sans-serif;margin:16px}svg text{font-size:12px;font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px;text-align:left}</style></head><body>` + "\n")
	fmt.Fprintf(&b, "<h1>Lineage of %s</h1>\n", html.EscapeString(root.Label()))
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">`+"\n", (maxC+1)*cw+20, (maxR+1)*ch+20)
	b.WriteString(`<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>` + "\n")
	pos := func(id string) (int, int) { return 10 + col[id]*cw, 10 + row[id]*ch }
	for _, e := range g.Edges {
		x1, y1 := pos(e.From)
		x2, y2 := pos(e.To)
		fmt.Fprintf(&b, `<path d="M%d,%d C%d,%d %d,%d %d,%d" stroke="#555" fill="none" marker-end="url(#arrow)"><title>%s</title></path>`+"\n",
			x1+nw, y1+nh/2, x1+nw+30, y1+nh/2, x2-30, y2+nh/2, x2, y2+nh/2, e.Kind)
	}
	for _, id := range g.ids() {
		n := g.Nodes[id]
		x, y := pos(id)
		fill, rx, dash, stroke := "#cfe8ff", 2, "", "#336"
		if n.Run != nil {
			fill, rx = "#ffe3b3", 14
			if n.Run.Status == "failed" {
				fill = "#ffb3b3"
			}
		} else if !n.Latest {
			dash = ` stroke-dasharray="4 3"`
			if n.Purged {
				fill, stroke = "#e0e0e0", "#888"
			}
		}
		sw := 1
		if id == g.Root {
			sw = 3
		}
		label := n.Label()
		if r := []rune(label); len(r) > 32 { // by runes: a cut inside one is invalid UTF-8
			label = "…" + string(r[len(r)-31:])
		}
		sub := short(id)
		if n.Version != nil && !n.Latest {
			sub += " · " + n.notLatest()
		} else if n.Run != nil {
			sub = "run · " + n.Run.Status
		}
		fmt.Fprintf(&b, `<g id="%s"><rect x="%d" y="%d" width="%d" height="%d" rx="%d" fill="%s" stroke="%s" stroke-width="%d"%s/>`+
			`<text x="%d" y="%d">%s</text><text x="%d" y="%d" fill="#555">%s</text><title>%s</title></g>`+"\n",
			id, x, y, nw, nh, rx, fill, stroke, sw, dash, x+8, y+19, html.EscapeString(label), x+8, y+36, html.EscapeString(sub), html.EscapeString(g.describe(id)))
	}
	b.WriteString("</svg>\n<h2>Nodes</h2>\n<table><tr><th>uid</th><th>what</th></tr>\n")
	for _, id := range g.ids() {
		fmt.Fprintf(&b, "<tr><td><code>%s</code></td><td>%s</td></tr>\n", id, html.EscapeString(g.describe(id)))
	}
	b.WriteString("</table>\n</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

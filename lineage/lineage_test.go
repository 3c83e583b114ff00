package lineage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/lineage"
)

func openBolt(t testing.TB) *catalog.Bolt {
	t.Helper()
	c, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fixture records raw → merge → merged, stats ← stats ← raw; report ←
// merged, stats; and a newer raw version (so raw@v1 is not latest).
type fixture struct {
	c                          *catalog.Bolt
	raw, merged, stats, report catalog.Version
	merge, statsRun, reportRun catalog.Run
}

func newFixture(t testing.TB) *fixture {
	ctx := context.Background()
	f := &fixture{c: openBolt(t)}
	tr, err := f.c.SaveTransform(ctx, catalog.Transform{Name: "wf", Kind: "pipeline"})
	if err != nil {
		t.Fatal(err)
	}
	parent, _ := f.c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "snakemake", User: "ana"})
	run := func(name string, in []catalog.Version, out string) (catalog.Run, catalog.Version) {
		r, err := f.c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: name, Parent: parent.UID, User: "ana"})
		if err != nil {
			t.Fatal(err)
		}
		var uids []string
		for _, v := range in {
			uids = append(uids, v.UID)
		}
		if err := f.c.AddInputs(ctx, r.UID, uids); err != nil {
			t.Fatal(err)
		}
		nv := catalogtest.NV(out, name+out)
		nv.Run = r.UID
		s, err := f.c.Save(ctx, []catalog.NewVersion{nv})
		if err != nil {
			t.Fatal(err)
		}
		zero := 0
		f.c.FinishRun(ctx, r.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero})
		return r, s[0].Version
	}
	s, _ := f.c.Save(ctx, []catalog.NewVersion{catalogtest.NV("raw/a.csv", "a1")})
	f.raw = s[0].Version
	f.merge, f.merged = run("merge", []catalog.Version{f.raw}, "results/merged.csv")
	f.statsRun, f.stats = run("stats", []catalog.Version{f.raw}, "results/stats.tsv")
	f.reportRun, f.report = run("report", []catalog.Version{f.merged, f.stats}, "results/report.txt")
	f.c.Save(ctx, []catalog.NewVersion{catalogtest.NV("raw/a.csv", "a2")})
	return f
}

func walk(t *testing.T, c lineage.Source, v catalog.Version, o lineage.Options) *lineage.Graph {
	t.Helper()
	g, err := lineage.Walk(context.Background(), c, v, o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// edges renders g's edges with labels, sorted.
func edges(g *lineage.Graph) string {
	var out []string
	for _, e := range g.Edges {
		out = append(out, g.Nodes[e.From].Label()+" -> "+g.Nodes[e.To].Label())
	}
	return strings.Join(out, "\n")
}

func TestWalk(t *testing.T) {
	f := newFixture(t)
	t.Run("Upstream", func(t *testing.T) {
		g := walk(t, f.c, f.report, lineage.Options{NoDown: true})
		if len(g.Nodes) != 7 || len(g.Edges) != 7 {
			t.Fatalf("nodes %d edges %d:\n%s", len(g.Nodes), len(g.Edges), edges(g))
		}
		if g.Nodes[f.raw.UID].Latest || !g.Nodes[f.report.UID].Latest {
			t.Fatal("latest marks wrong")
		}
		for _, e := range g.Edges {
			if e.From == e.To {
				t.Fatalf("self edge %v", e)
			}
		}
	})
	t.Run("Downstream", func(t *testing.T) {
		g := walk(t, f.c, f.raw, lineage.Options{NoUp: true})
		if _, ok := g.Nodes[f.report.UID]; !ok || len(g.Nodes) != 7 {
			t.Fatalf("downstream of raw:\n%s", edges(g))
		}
	})
	t.Run("Depth", func(t *testing.T) {
		g := walk(t, f.c, f.report, lineage.Options{Depth: 1})
		if _, ok := g.Nodes[f.raw.UID]; ok || len(g.Nodes) != 4 {
			t.Fatalf("depth 1:\n%s", edges(g))
		}
	})
	t.Run("Reproduced", func(t *testing.T) {
		// A second merge wrote merged.csv's bytes again: no new version,
		// and the walk shows it beside the run that made the version, up
		// from merged.csv and down from what it read.
		ctx := context.Background()
		f := newFixture(t)
		r, err := f.c.StartRun(ctx, catalog.Run{Transform: f.merge.Transform, Name: "merge2"})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.c.AddInputs(ctx, r.UID, []string{f.raw.UID}); err != nil {
			t.Fatal(err)
		}
		nv := catalogtest.NV("results/merged.csv", "merge"+"results/merged.csv")
		nv.Run = r.UID
		if s, err := f.c.Save(ctx, []catalog.NewVersion{nv}); err != nil || !s[0].Unchanged {
			t.Fatalf("Save = %+v, %v", s, err)
		}
		up := walk(t, f.c, f.merged, lineage.Options{NoDown: true})
		down := walk(t, f.c, f.raw, lineage.Options{NoUp: true})
		for _, g := range []*lineage.Graph{up, down} {
			kinds := map[string]string{}
			for _, e := range g.Edges {
				if e.To == f.merged.UID {
					kinds[e.From] = e.Kind
				}
			}
			if kinds[f.merge.UID] != lineage.Generated || kinds[r.UID] != lineage.Reproduced {
				t.Fatalf("edges into merged.csv %v:\n%s", kinds, edges(g))
			}
		}
		var b bytes.Buffer
		lineage.WriteText(&b, up)
		if !strings.Contains(b.String(), "<- run "+r.UID) || !strings.Contains(b.String(), "(also produced it: identical bytes)") {
			t.Fatalf("text:\n%s", b.String())
		}
		prov, _ := json.Marshal(lineage.PROV(up))
		if !strings.Contains(string(prov), `"lamina:reproduced":true`) {
			t.Fatalf("PROV: %s", prov)
		}
	})
	t.Run("Cycle", func(t *testing.T) {
		// A record that makes a cycle: merge "used" the report.
		ctx := context.Background()
		if err := f.c.AddInputs(ctx, f.merge.UID, []string{f.report.UID}); err != nil {
			t.Fatal(err)
		}
		defer func() { // not undoable through the API: use a fresh fixture after
			f = newFixture(t)
		}()
		g := walk(t, f.c, f.report, lineage.Options{})
		var b bytes.Buffer
		if err := lineage.WriteText(&b, g); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "(cycle)") {
			t.Fatalf("no cycle mark:\n%s", b.String())
		}
	})
}

func TestExports(t *testing.T) {
	f := newFixture(t)
	g := walk(t, f.c, f.merged, lineage.Options{})
	out := map[string]string{}
	for _, format := range lineage.Formats {
		var b bytes.Buffer
		if err := lineage.Write(&b, g, format); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		out[format] = b.String()
	}
	if err := lineage.Write(&bytes.Buffer{}, g, "png"); err == nil {
		t.Fatal("unknown format accepted")
	}
	text := out["text"]
	for _, want := range []string{"results/merged.csv@v1", "upstream:", "<- run " + f.merge.UID, "<- raw/a.csv@v1", "(not latest)", "downstream:", "-> run " + f.reportRun.UID, "-> results/report.txt@v1"} {
		if !strings.Contains(text, want) {
			t.Fatalf("text lacks %q:\n%s", want, text)
		}
	}
	var back lineage.Graph
	if err := json.Unmarshal([]byte(out["json"]), &back); err != nil || len(back.Nodes) != len(g.Nodes) || len(back.Edges) != len(g.Edges) {
		t.Fatalf("json: %v", err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out["prov-json"]), &raw); err != nil || raw["prefix"] == nil {
		t.Fatalf("prov-json: %v\n%s", err, out["prov-json"])
	}
	prov := map[string]map[string]map[string]any{}
	for k, v := range raw {
		if k == "prefix" {
			continue
		}
		var m map[string]map[string]any
		if err := json.Unmarshal(v, &m); err != nil {
			t.Fatalf("prov-json %s: %v", k, err)
		}
		prov[k] = m
	}
	if len(prov["entity"]) != 3 || len(prov["activity"]) < 3 || len(prov["used"]) == 0 || len(prov["wasGeneratedBy"]) == 0 ||
		len(prov["agent"]) != 1 || len(prov["wasAssociatedWith"]) == 0 || len(prov["wasInformedBy"]) == 0 {
		t.Fatalf("prov-json: %s", out["prov-json"])
	}
	// prov:type is a qualified name, written as PROV-JSON's typed literal.
	qname := func(n string) map[string]any { return map[string]any{"$": n, "type": "prov:QUALIFIED_NAME"} }
	for k, want := range map[string]map[string]any{"entity": qname("lamina:Version"), "activity": qname("lamina:Run"), "agent": qname("prov:Person")} {
		for id, e := range prov[k] {
			if !reflect.DeepEqual(e["prov:type"], want) {
				t.Fatalf("prov-json %s %s: prov:type %#v, want %#v", k, id, e["prov:type"], want)
			}
		}
	}
	if !strings.HasPrefix(out["mermaid"], "flowchart LR\n") || strings.Count(out["mermaid"], "-->") != len(g.Edges) {
		t.Fatalf("mermaid:\n%s", out["mermaid"])
	}
	if _, err := exec.LookPath("dot"); err == nil {
		cmd := exec.Command("dot", "-Tsvg")
		cmd.Stdin = strings.NewReader(out["dot"])
		svg, err := cmd.Output()
		if err != nil || !bytes.Contains(svg, []byte("results/merged.csv@v1")) {
			t.Fatalf("dot -Tsvg: %v\n%s", err, out["dot"])
		}
	}
	html := out["html"]
	if strings.Contains(html, "<script") || strings.Contains(html, "http://") && !strings.Contains(html, "http://www.w3.org/2000/svg") {
		t.Fatal("html is not self-contained")
	}
	renderHTML(t, html, len(g.Nodes))
}

// renderHTML screenshots the page in headless Chromium and checks that the
// node colours are drawn.
func renderHTML(t *testing.T, html string, nodes int) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("LAMINA_SKIP_CHROMIUM") == "1" {
			t.Skip("no chromium and LAMINA_SKIP_CHROMIUM=1")
		}
		t.Fatal("no chromium: apt-get install -y chromium (LAMINA_SKIP_CHROMIUM=1 skips this check)")
	}
	dir := t.TempDir()
	page, shot := filepath.Join(dir, "lineage.html"), filepath.Join(dir, "shot.png")
	os.WriteFile(page, []byte(html), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--window-size=1400,900", "--hide-scrollbars", "--screenshot="+shot, "file://"+page)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	version, run := countColours(t, shot)
	if version < 3*1000 || run < 2*1000 {
		t.Fatalf("screenshot shows %d version and %d run pixels; want the %d nodes drawn", version, run, nodes)
	}
}

// TestHTMLLongLabels: a label cut to fit its box is cut between
// characters, never inside one.
func TestHTMLLongLabels(t *testing.T) {
	for _, key := range []string{
		"résultats/échantillon_été_" + strings.Repeat("é", 20) + ".csv",
		"results/" + strings.Repeat("数据", 20) + ".csv",
		"r/" + strings.Repeat("🧬", 40),
	} {
		v := catalog.Version{UID: "AAAAAAAAAAAAAAAA0000", Key: key, Version: 1}
		g := &lineage.Graph{Root: v.UID, Nodes: map[string]*lineage.Node{v.UID: {ID: v.UID, Kind: "version", Version: &v, Latest: true}}}
		for off := 0; off < 4; off++ { // every byte alignment of the cut
			v.Key = strings.Repeat("x", off) + key
			var b bytes.Buffer
			if err := lineage.WriteHTML(&b, g); err != nil {
				t.Fatal(err)
			}
			if !utf8.Valid(b.Bytes()) {
				t.Fatalf("%s: the page is not valid UTF-8", v.Key)
			}
			tail := []rune(v.Ref())
			if want := "…" + string(tail[len(tail)-31:]) + "</text>"; !strings.Contains(b.String(), want) {
				t.Fatalf("%s: no label %q in the page", v.Key, want)
			}
		}
	}
}

// TestTextOfRerunChain: a chain of 4 steps, each rerun 6 times with the
// same bytes, so each version has 6 producing runs. The text tree expanded
// every run's whole upstream again (6^4 paths; 15 reruns printed 209,733
// lines): a node already expanded is "(shown above)" now, and the run that
// made a version comes first.
func TestTextOfRerunChain(t *testing.T) {
	ctx := context.Background()
	c := openBolt(t)
	tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "step", Kind: "script"})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("raw/y.csv", "y")})
	prev := s[0].Version
	for step := 1; step <= 4; step++ {
		key := fmt.Sprintf("ch/%d.txt", step)
		var made catalog.Version
		for rep := 0; rep < 6; rep++ {
			r, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: fmt.Sprintf("s%d.%d", step, rep)})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.AddInputs(ctx, r.UID, []string{prev.UID}); err != nil {
				t.Fatal(err)
			}
			nv := catalogtest.NV(key, "y")
			nv.Run = r.UID
			s, err := c.Save(ctx, []catalog.NewVersion{nv})
			if err != nil || (rep > 0) != s[0].Unchanged {
				t.Fatalf("save %s rep %d: %+v, %v", key, rep, s, err)
			}
			if rep == 0 {
				made = s[0].Version
			}
		}
		prev = made
	}
	var b bytes.Buffer
	if err := lineage.WriteText(&b, walk(t, c, prev, lineage.Options{NoDown: true})); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	if n := strings.Count(text, "\n"); n > 100 || !strings.Contains(text, "(shown above)") {
		t.Fatalf("%d lines:\n%.3000s", n, text)
	}
	lines := strings.Split(text, "\n")
	if len(lines) < 3 || !strings.Contains(lines[2], "<- run ") || !strings.Contains(lines[2], "s4.0") || strings.Contains(lines[2], "also produced") {
		t.Fatalf("the run that made the version is not first:\n%.1000s", text)
	}
}

// TestMermaidEscapes: Mermaid labels are HTML, escaped with its entity
// codes: a key `a<e>.txt` lost `<e>` (only `"` was escaped), and `&` or
// a `#…;` in a name was taken for an entity.
func TestMermaidEscapes(t *testing.T) {
	v := &catalog.Version{UID: "abcdefghijklmnop0000", Key: `a<e>&"x".txt`, Version: 1}
	g := &lineage.Graph{Root: v.UID, Nodes: map[string]*lineage.Node{
		v.UID:              {ID: v.UID, Kind: "version", Version: v, Latest: true},
		"RUNabcdefghijklm": {ID: "RUNabcdefghijklm", Kind: "run", Run: &catalog.Run{UID: "RUNabcdefghijklm", Name: "q #lt; <b>"}},
	}, Edges: []lineage.Edge{{From: "RUNabcdefghijklm", To: v.UID, Kind: "wrote"}}}
	var b bytes.Buffer
	if err := lineage.WriteMermaid(&b, g); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{`a#lt;e#gt;#amp;#quot;x#quot;.txt@v1`, `q #35;lt; #lt;b#gt; (run RUNabcde)`} {
		if !strings.Contains(out, want) {
			t.Errorf("mermaid lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "<e>") || strings.Contains(out, "<b>") {
		t.Errorf("mermaid has a raw tag:\n%s", out)
	}
}

// A trashed version is marked as in the trash, not "not latest": a
// Snakemake temp() output is the newest version of its key there is.
func TestTrashedVersionMarked(t *testing.T) {
	f := newFixture(t)
	if _, err := f.c.Trash(context.Background(), f.report.Key); err != nil {
		t.Fatal(err)
	}
	g := walk(t, f.c, f.merged, lineage.Options{})
	for _, format := range []string{"text", "mermaid", "html"} {
		var b bytes.Buffer
		if err := lineage.Write(&b, g, format); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), "in the trash") {
			t.Errorf("%s: trashed report not marked:\n%s", format, b.String())
		}
	}
	var b bytes.Buffer
	if err := lineage.WriteText(&b, g); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, "results/report.txt@v1") && strings.Contains(line, "not latest") {
			t.Fatalf("trashed version called not latest: %q", line)
		}
	}
}

// TestSidecarAfterFailedThenRerun: a failed job's output (trashed, then
// brought back by a rerun's identical write) named the failed run in the
// sidecar, the good one only among also_produced_by. The run that ended ok
// is named now, the failed one among also_produced_by.
func TestSidecarAfterFailedThenRerun(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	end := func(r catalog.Run, code int) {
		t.Helper()
		if _, err := f.c.FinishRun(ctx, r.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &code}); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, code int) catalog.Run {
		t.Helper()
		r, err := f.c.StartRun(ctx, catalog.Run{Transform: f.merge.Transform, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.c.AddInputs(ctx, r.UID, []string{f.raw.UID}); err != nil {
			t.Fatal(err)
		}
		nv := catalogtest.NV("results/flaky.csv", "flaky")
		nv.Run = r.UID
		if _, err := f.c.Save(ctx, []catalog.NewVersion{nv}); err != nil {
			t.Fatal(err)
		}
		end(r, code)
		return r
	}
	bad := write("flaky-1", 1)
	good := write("flaky-2", 0)
	v, err := f.c.ByKey(ctx, "results/flaky.csv", 0)
	if err != nil || v.Run != bad.UID {
		t.Fatalf("the version %+v, %v: made by %s", v, err, bad.UID)
	}
	l, _ := lineage.SidecarOf(ctx, f.c, v).(lineage.SidecarLineage)
	if l.Run != good.UID || l.Status != catalog.RunOK || len(l.Inputs) != 1 ||
		!slices.Equal(l.AlsoBy, []string{bad.UID + " (flaky-1)"}) || l.AlsoCount != 1 {
		t.Fatalf("sidecar lineage %+v: want run %s ok, also produced by %s", l, good.UID, bad.UID)
	}
	// A version its run made ok keeps naming that run.
	m, _ := f.c.ByKey(ctx, "results/merged.csv", 0)
	nv := catalogtest.NV("results/merged.csv", "merge"+"results/merged.csv")
	nv.Run = good.UID
	if _, err := f.c.Save(ctx, []catalog.NewVersion{nv}); err != nil {
		t.Fatal(err)
	}
	if l, _ := lineage.SidecarOf(ctx, f.c, m).(lineage.SidecarLineage); l.Run != f.merge.UID || l.AlsoCount != 1 {
		t.Fatalf("sidecar lineage of a version made ok: %+v", l)
	}
}

// TestTextInputsByKey: the text lists a run's inputs and outputs by key,
// then number, as runs show does; they came by uid.
func TestTextInputsByKey(t *testing.T) {
	now := time.Now()
	ver := func(uid, key string, n int) *lineage.Node {
		return &lineage.Node{ID: uid, Kind: "version", Latest: true, Version: &catalog.Version{UID: uid, Key: key, Version: n}}
	}
	g := &lineage.Graph{Root: "A0", Nodes: map[string]*lineage.Node{
		"A0": ver("A0", "in/b.csv", 1),
		"B0": ver("B0", "in/z.csv", 1),
		"C0": ver("C0", "in/a.csv", 2),
		"D0": ver("D0", "in/a.csv", 1),
		"E0": ver("E0", "out/y.csv", 1),
		"F0": ver("F0", "out/x.csv", 1),
		"R1": {ID: "R1", Kind: "run", Run: &catalog.Run{UID: "R1", Status: "ok", StartedAt: now}, Trans: &catalog.Transform{Name: "t"}},
	}}
	for _, in := range []string{"B0", "C0", "D0"} {
		g.Edges = append(g.Edges, lineage.Edge{From: in, To: "R1", Kind: lineage.Used})
	}
	g.Edges = append(g.Edges, lineage.Edge{From: "A0", To: "R1", Kind: lineage.Used},
		lineage.Edge{From: "R1", To: "E0", Kind: lineage.Generated}, lineage.Edge{From: "R1", To: "F0", Kind: lineage.Generated})
	var b bytes.Buffer
	if err := lineage.WriteText(&b, g); err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, line := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "->" && strings.Contains(f[1], "@v") {
			order = append(order, f[1])
		}
	}
	// Downstream of in/b.csv: R1, its outputs (by key), not its other inputs.
	if want := []string{"out/x.csv@v1", "out/y.csv@v1"}; !slices.Equal(order, want) {
		t.Fatalf("outputs in the text %v, want %v:\n%s", order, want, b.String())
	}
	g.Root = "E0"
	b.Reset()
	if err := lineage.WriteText(&b, g); err != nil {
		t.Fatal(err)
	}
	order = nil
	for _, line := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "<-" && strings.Contains(f[1], "@v") {
			order = append(order, f[1])
		}
	}
	if want := []string{"in/a.csv@v1", "in/a.csv@v2", "in/b.csv@v1", "in/z.csv@v1"}; !slices.Equal(order, want) {
		t.Fatalf("inputs in the text %v, want %v:\n%s", order, want, b.String())
	}
}

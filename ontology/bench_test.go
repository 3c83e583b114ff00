package ontology_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/ontology"
)

// Run with: go test -run '^$' -bench . -benchmem ./ontology/
// Targets (issue 6): import CL JSON and hp.obo.gz < 1 s, GO table < 3 s;
// validate >= 1M values/s; standardize >= 200k values/s; search median
// < 5 ms on Mondo; descendants of CL:0000000 < 10 ms.

func benchImport(b *testing.B, entity string, path ...string) {
	p := dataPath(path...)
	for b.Loop() {
		src, err := ontology.Import(context.Background(), p, ontology.ImportOptions{Entity: entity})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ontology.Build(src); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkImportCLJSON(b *testing.B) {
	benchImport(b, "celltype", "ontologies", "cellxgene-json", "CL-ontology-v2026-03-26.json.gz")
}

func BenchmarkImportHPOBO(b *testing.B) { benchImport(b, "phenotype", "ontologies", "hp.obo.gz") }

func BenchmarkImportGOTable(b *testing.B) {
	benchImport(b, "pathway", "ontologies", "go-terms-GOdb-2022-07-01.tsv.gz")
}

// BenchmarkReload is what a catalog pays to get an Index back from the
// stored blob instead of the original file.
func BenchmarkReloadGO(b *testing.B) {
	src := load(b, "pathway", "", "ontologies", "go-terms-GOdb-2022-07-01.tsv.gz").Source()
	blob := ontology.Marshal(src)
	b.SetBytes(int64(len(blob)))
	for b.Loop() {
		s, err := ontology.Unmarshal(blob)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ontology.Build(s); err != nil {
			b.Fatal(err)
		}
	}
}

// mixedValues returns n values cycling through names, EXACT synonyms, ids
// and typos (a letter swapped) of the index's terms.
func mixedValues(idx *ontology.Index, n int) []string {
	var pool []string
	for _, t := range idx.Source().Terms {
		pool = append(pool, t.Name, t.ID)
		for _, s := range t.Synonyms {
			pool = append(pool, s.Text)
		}
		if r := []rune(t.Name); len(r) > 3 {
			r[1], r[2] = r[2], r[1]
			pool = append(pool, string(r))
		}
	}
	out := make([]string, n)
	for i := range out {
		out[i] = pool[(i*7919)%len(pool)]
	}
	return out
}

func BenchmarkValidate1M(b *testing.B) {
	idx := clJSON(b)
	values := mixedValues(idx, 1_000_000)
	b.ResetTimer()
	valid := 0
	for b.Loop() {
		for _, v := range values {
			if idx.Validate(v).Valid {
				valid++
			}
		}
	}
	b.ReportMetric(float64(len(values))*float64(b.N)/b.Elapsed().Seconds(), "values/s")
}

func BenchmarkStandardize1M(b *testing.B) {
	idx := clJSON(b)
	values := mixedValues(idx, 1_000_000)
	b.ResetTimer()
	for b.Loop() {
		for _, v := range values {
			idx.Standardize(v, ontology.StandardizeOptions{})
		}
	}
	b.ReportMetric(float64(len(values))*float64(b.N)/b.Elapsed().Seconds(), "values/s")
}

// searchQueries returns 100 queries: exact names, synonyms, two-word
// prefixes and typos of Mondo terms.
func searchQueries(idx *ontology.Index) []string {
	terms := idx.Source().Terms
	var qs []string
	for i := 0; len(qs) < 100; i++ {
		t := terms[(i*7919)%len(terms)]
		if t.Obsolete || t.Name == "" {
			continue
		}
		r := []rune(t.Name)
		switch len(qs) % 4 {
		case 0:
			qs = append(qs, t.Name)
		case 1:
			if len(t.Synonyms) > 0 {
				qs = append(qs, t.Synonyms[0].Text)
			} else {
				qs = append(qs, string(r[:min(len(r), 6)]))
			}
		case 2:
			qs = append(qs, string(r[:min(len(r), 9)]))
		case 3:
			if len(r) > 4 {
				r[2], r[3] = r[3], r[2]
			}
			qs = append(qs, string(r))
		}
	}
	return qs
}

func BenchmarkSearchMondo(b *testing.B) {
	idx := mondo(b)
	qs := searchQueries(idx)
	idx.Search("warm up the fuzzy index", ontology.SearchOptions{})
	lat := make([]time.Duration, len(qs))
	b.ResetTimer()
	for b.Loop() {
		for i, q := range qs {
			start := time.Now()
			idx.Search(q, ontology.SearchOptions{Limit: 10})
			lat[i] = time.Since(start)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds())/1000, "p90-ms")
}

func BenchmarkDescendantsCell(b *testing.B) {
	idx := clJSON(b)
	var n int
	for b.Loop() {
		d, err := idx.Descendants("CL:0000000", ontology.IsA)
		if err != nil {
			b.Fatal(err)
		}
		n = len(d)
	}
	b.ReportMetric(float64(n), "terms")
}

func ExampleIndex_Standardize() {
	src, _ := ontology.Import(context.Background(), dataPath("ontologies", "cl-basic.obo"), ontology.ImportOptions{Entity: "celltype"})
	idx, _ := ontology.Build(src)
	for _, v := range []string{"T cell", "T-cell", "Monocyte ", "dendritc cell"} {
		s := idx.Standardize(v, ontology.StandardizeOptions{})
		fmt.Printf("%q -> %q (%s)\n", v, s.Standard(), s.Match)
	}
	// Output:
	// "T cell" -> "T cell" (exact_name)
	// "T-cell" -> "T cell" (synonym)
	// "Monocyte " -> "monocyte" (case_or_whitespace)
	// "dendritc cell" -> "dendritc cell" (no_match)
}

// BenchmarkLoadIndex is what a process pays to get a ready Index from the
// bytes of its index file (read from disk separately): the checksum, the
// range checks and nothing else. BenchmarkBuild is what it replaces:
// Unmarshal of the stored source, Build, and the first fuzzy query.
func BenchmarkLoadIndex(b *testing.B) {
	for _, tc := range benchSources {
		b.Run(tc.name, func(b *testing.B) {
			x := load(b, tc.entity, tc.organism, tc.path...)
			data := x.MarshalIndex()
			b.SetBytes(int64(len(data)))
			b.ReportMetric(float64(len(data))/(1<<20), "MiB")
			for b.Loop() {
				if _, err := ontology.LoadIndex(data, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, tc := range benchSources {
		b.Run(tc.name, func(b *testing.B) {
			blob := ontology.Marshal(load(b, tc.entity, tc.organism, tc.path...).Source())
			for b.Loop() {
				src, err := ontology.Unmarshal(blob)
				if err != nil {
					b.Fatal(err)
				}
				x, err := ontology.Build(src)
				if err != nil {
					b.Fatal(err)
				}
				x.Suggest("dendritc cell", 3)
			}
		})
	}
}

var benchSources = []struct {
	name, entity, organism string
	path                   []string
}{
	{"CL", "celltype", "", []string{"ontologies", "cellxgene-json", "CL-ontology-v2026-03-26.json.gz"}},
	{"Mondo", "disease", "", []string{"ontologies", "cellxgene-json", "MONDO-ontology-v2026-05-05.json.gz"}},
	{"GO", "pathway", "", []string{"ontologies", "go-terms-GOdb-2022-07-01.tsv.gz"}},
}

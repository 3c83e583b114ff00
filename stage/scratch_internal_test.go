package stage

import (
	"math/rand/v2"
	"path"
	"testing"
)

// mayMatch never turns down a name path.Match matches: every pattern of
// up to 6 bytes over an alphabet of literals and metacharacters (bad
// patterns too) against every name of up to 4 bytes, both drawn at random,
// and DefaultScratch against names made from its patterns.
func TestMayMatchKeepsEveryMatch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const patBytes, nameBytes = `ab.é*?[]\-^`, `ab.é-^]\*`
	draw := func(alphabet string, n int) string {
		b := make([]byte, r.IntN(n+1))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	pats := append([]string{}, DefaultScratch...)
	for range 20000 {
		pats = append(pats, draw(patBytes, 6))
	}
	names := []string{".snakemake", "#x#", "x~", ".x.swp", "lab.db-wal", "4913", "f00001", "é", "aé", "éa"}
	for range 300 {
		names = append(names, draw(nameBytes, 4))
	}
	for _, pat := range pats {
		for _, name := range names {
			if ok, _ := path.Match(pat, name); ok && !mayMatch(pat, name) {
				t.Errorf("path.Match(%q, %q) holds, mayMatch says it cannot", pat, name)
			}
		}
	}
}

func BenchmarkScratchMatchName(b *testing.B) {
	s := Scratch(DefaultScratch)
	for b.Loop() {
		if s.MatchName("f00001") {
			b.Fatal("scratch")
		}
	}
}

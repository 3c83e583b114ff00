package catalog

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// TestIsName checks isName against the regexp it replaces.
func TestIsName(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$`)
	cases := []string{"", "a", "_", "9a", ".a", "-a", "a9", "a.b-c_d", "cell type", "ä", "a\n",
		strings.Repeat("a", 128), strings.Repeat("a", 129), "A" + strings.Repeat("-", 127)}
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "aZ_9.-/ \x00é"
	for range 20000 {
		b := make([]byte, rng.IntN(6))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		if got, want := isName(s), re.MatchString(s); got != want {
			t.Fatalf("isName(%q) = %v, want %v", s, got, want)
		}
	}
}

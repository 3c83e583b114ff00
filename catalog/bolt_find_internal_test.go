package catalog

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/lamina-bio/lamina/ref"
)

// TestSeekUID checks the galloping search against a linear one.
func TestSeekUID(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	uid := func() []byte {
		var u [ref.UIDLen]byte
		u[0], u[1] = byte(rng.IntN(8)), byte(rng.IntN(256))
		return u[:]
	}
	for n := range 70 {
		var ps []posting
		for range n {
			ps = append(ps, posting{uid: [ref.UIDLen]byte(uid())})
		}
		slices.SortFunc(ps, func(a, b posting) int { return slices.Compare(a.uid[:], b.uid[:]) })
		for range 50 {
			from, u := rng.IntN(n+1), uid()
			want := from
			for want < n && slices.Compare(ps[want].uid[:], u) < 0 {
				want++
			}
			if got := seekUID(ps, from, u); got != want {
				t.Fatalf("n=%d from=%d: seekUID = %d, want %d", n, from, got, want)
			}
		}
	}
}

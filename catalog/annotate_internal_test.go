package catalog

import (
	"bytes"
	"math"
	"math/big"
	"math/rand/v2"
	"regexp"
	"slices"
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

// Index keys of ints (intKey) and floats (numKey) order as the numbers
// they hold, compared exactly, and are equal only for equal numbers; no
// key followed by the separator 0 is a prefix of another, so bbolt's
// "feature 0 key 0" prefix of one value finds no other.
func TestNumberKeysOrder(t *testing.T) {
	type num struct {
		key   []byte
		exact *big.Float
	}
	var nums []num
	addInt := func(n int64) { nums = append(nums, num{intKey(n), new(big.Float).SetInt64(n)}) }
	addFloat := func(f float64) { nums = append(nums, num{numKey(f), big.NewFloat(f)}) }
	for _, base := range []int64{0, 1 << 53, -(1 << 53), 1 << 62, -(1 << 62), math.MaxInt64, math.MinInt64, 1 << 60} {
		for d := int64(-1100); d <= 1100; d += 37 {
			n := base + d
			if (d > 0 && n < base) || (d < 0 && n > base) {
				continue // overflowed
			}
			addInt(n)
			addFloat(float64(n))
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		addInt(int64(rng.Uint64()))
		addInt(rng.Int64N(1<<55) - 1<<54)
		addFloat(rng.NormFloat64() * 1e17)
	}
	for _, f := range []float64{0.5, -0.5, 2.5, 0x1p63, -0x1p63, 0x1p64, 1e300, -1e300, math.SmallestNonzeroFloat64} {
		addFloat(f)
	}
	for i, a := range nums {
		for _, b := range nums[i:] {
			want, got := a.exact.Cmp(b.exact), bytes.Compare(a.key, b.key)
			if want != got {
				t.Fatalf("%v vs %v: keys compare %d, numbers %d (%x, %x)", a.exact, b.exact, got, want, a.key, b.key)
			}
			if len(a.key) != len(b.key) {
				short, long := a.key, b.key
				if len(short) > len(long) {
					short, long = long, short
				}
				if bytes.HasPrefix(long, append(short[:len(short):len(short)], 0)) {
					t.Fatalf("key %x followed by 0 is a prefix of %x", short, long)
				}
			}
		}
	}
}

// TestCondKeysOldNegativeZero: a -0 stored before normalize made it 0
// keeps its key (negZeroKey, just below 0's); conditions on 0 take it as
// 0, as the index ranges of both stores compare it.
func TestCondKeysOldNegativeZero(t *testing.T) {
	matches := func(op string, wants [][]byte, have []byte) bool {
		switch op {
		case "=":
			return slices.ContainsFunc(wants, func(w []byte) bool { return bytes.Equal(w, have) })
		case "!=":
			return !slices.ContainsFunc(wants, func(w []byte) bool { return bytes.Equal(w, have) })
		}
		return compareKeys(op, have, wants[0])
	}
	for _, op := range []string{"=", "!=", "<", "<=", ">", ">="} {
		wants, err := condKeys("float", op, "0")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := matches(op, wants, negZeroKey), matches(op, wants, numKey(0)); got != want {
			t.Errorf("score%s0: a stored -0 matches %v, a 0 %v", op, got, want)
		}
		for _, f := range []float64{-1e-300, 1e-300} { // the neighbours answer as before
			k, _ := condKey("float", op, "0")
			if got, want := matches(op, wants, numKey(f)), matches(op, [][]byte{k}, numKey(f)); got != want {
				t.Errorf("score%s0: %g matches %v, want %v", op, f, got, want)
			}
		}
	}
}

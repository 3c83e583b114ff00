package postgres

import (
	"testing"
	"time"
)

// settle keeps a write's versions only if no invalidation came between
// the generation taken before its COMMIT and settle: a later commit of the
// key (whose notification arrived first) must not be shadowed by ours.
func TestSettleKeepsOnlyWhatNoLaterChangeTouched(t *testing.T) {
	v1 := Version{UID: "aaaaaaaaaaaa0001", Key: "d/k", Version: 1}
	for _, tc := range []struct {
		name    string
		between func(c *lookups)
		kept    bool
	}{
		{"nothing in between", func(*lookups) {}, true},
		{"another store's change of the key", func(c *lookups) { c.forget([]string{"d/k"}) }, false},
		{"another store's change of another key", func(c *lookups) { c.forget([]string{"e/other"}) }, false},
		{"the listener reconnected", func(c *lookups) { c.up() }, false},
		{"the listener went away", func(c *lookups) { c.down() }, false},
	} {
		var c lookups
		c.up()
		c.putKey(c.generation(), "d/k", 0, keyAnswer{err: ErrNotFound}) // cached before the save
		gen := c.generation()
		tc.between(&c)
		c.settle(gen, []string{"d/k"}, []Version{v1})
		for _, n := range []int{0, 1} {
			a, ok := c.key("d/k", n)
			if kept := ok && a.err == nil && a.v.UID == v1.UID; kept != tc.kept {
				t.Errorf("%s: ByKey(d/k, %d) cached %v (%+v), want kept %v", tc.name, n, ok, a, tc.kept)
			}
			if ok && a.err != nil {
				t.Errorf("%s: the not-found answer from before the save survived it", tc.name)
			}
		}
		if _, ok := c.dir("d/"); ok {
			t.Errorf("%s: a listing survived", tc.name)
		}
	}
	var c lookups
	c.up()
	c.contact = time.Now().Add(-2 * leaseTime) // lease expired: serve nothing, keep nothing
	gen := c.generation()
	c.settle(gen, []string{"d/k"}, []Version{v1})
	c.heard()
	if _, ok := c.key("d/k", 0); ok {
		t.Error("settle kept a version while the cache did not serve")
	}
}

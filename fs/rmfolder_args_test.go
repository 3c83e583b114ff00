package fs

import "testing"

// rm's options as GNU rm reads them (checked against coreutils 9.1 here):
// the last of -f, -i, -I and --interactive decides, long options and
// their values may be shortened.
func TestRmTakesWhole(t *testing.T) {
	const root, cwd = "/m/d/art.zarr", "/m/d"
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"-r", root}, true},
		{[]string{"-rf", root}, true},
		{[]string{"-R", "art.zarr"}, true},
		{[]string{"--rec", root}, true},
		{[]string{"-r", "/m/d"}, true},
		{[]string{"-rI", root}, true},       // asks once, before it starts
		{[]string{"-i", "-rf", root}, true}, // alias rm='rm -i'; rm -rf
		{[]string{"-r", "--interactive", "--force", root}, true},
		{[]string{"-r", "--interactive=never", root}, true},
		{[]string{"-r", "--interactive=n", root}, true}, // never, no, none: all never
		{[]string{"-r", "--interactive=once", root}, true},
		{[]string{root}, false},
		{[]string{"-r", "-i", root}, false},
		{[]string{"-rf", "-i", root}, false},
		{[]string{"-r", "--inter", root}, false},
		{[]string{"-r", "--i", root}, false},
		{[]string{"-r", "--interactive=al", root}, false},
		{[]string{"-r", "--interactive=bogus", root}, false},
		{[]string{"-r", "--v", root}, false}, // ambiguous: rm refuses
		{[]string{"-r", "/m/d/art.zarr2"}, false},
		{[]string{"-r", "--", "-i", root}, true}, // "-i" is a file there
		{[]string{"-r", root + "/sub"}, false},
		// Operands rm refuses and skips (audit a8): what is left names no
		// folder above the artifact.
		{[]string{"-r", "art.zarr/sub", "."}, false},
		{[]string{"-r", root + "/sub", root + "/sub/.."}, false},
		{[]string{"-r", "../d/"}, true}, // names d itself
		{[]string{"-r", root + "/sub", "/"}, false},
		{[]string{"-r", "--no-preserve-root", "/"}, true},
	} {
		if got := rmTakesWhole(c.args, cwd, root, false); got != c.want {
			t.Errorf("rm %q: takes the whole artifact %v, want %v", c.args, got, c.want)
		}
	}
}

package lineage_test

import (
	"image/png"
	"os"
	"testing"
)

// countColours counts the pixels of the version and run fills.
func countColours(t *testing.T, path string) (version, run int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			r, g, bl = r>>8, g>>8, bl>>8
			switch {
			case near(r, 0xcf) && near(g, 0xe8) && near(bl, 0xff):
				version++
			case near(r, 0xff) && near(g, 0xe3) && near(bl, 0xb3):
				run++
			}
		}
	}
	return version, run
}

func near(a uint32, b uint32) bool { return a+3 >= b && a <= b+3 }

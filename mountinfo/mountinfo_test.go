package mountinfo

import "testing"

func TestUnescape(t *testing.T) {
	if got := Unescape(`/a\040b\134c\04`); got != `/a b\c\04` {
		t.Errorf("Unescape = %q", got)
	}
}

// The root file system is mounted, and / shows a device and a type.
func TestRead(t *testing.T) {
	for _, m := range Read() {
		if m.Dir == "/" && m.Dev != "" && m.Type != "" {
			return
		}
	}
	t.Fatalf("no mount at / in %v", Read())
}

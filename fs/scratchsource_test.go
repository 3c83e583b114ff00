package fs_test

import (
	"os"
	"path/filepath"
	"testing"
)

// backupEdit is the audit's edit.py: the key renamed to a backup name
// (scratch: f~), the backup read, the key written anew. mode "modify"
// appends to the backup before reading it, "truncate" truncates it by
// path, "remade" replaces it with a new file; "moved" renames it within
// scratch and back.
const backupEdit = `
import os, sys
p, mode = sys.argv[1], sys.argv[2]
os.rename(p, p + "~")
if mode == "modify":
    with open(p + "~", "a") as f:
        f.write("9,9\n")
elif mode == "truncate":
    os.truncate(p + "~", 4)
elif mode == "remade":
    os.remove(p + "~")
    with open(p + "~", "w") as f:
        f.write("a,b\n3,4\n")
elif mode == "moved":
    os.rename(p + "~", p + "~~")
    os.rename(p + "~~", p + "~")
data = open(p + "~").read()
with open(p, "w") as f:
    f.write(data.upper())
`

// TestScratchBackupReadCredited: a tracked read of a scratch file a key
// was renamed to (an editor's backup, f~) records the key's version the
// backup copies, as a read of the key does; one the run modified
// (written, truncated) first records nothing. The read went unrecorded:
// `lamina run -- python3 edit.py f` printed "0 inputs, 1 output".
func TestScratchBackupReadCredited(t *testing.T) {
	w := newWorld(t)
	cases := []struct {
		name   string
		credit bool
	}{
		{"plain", true},
		{"moved", true}, // renamed within scratch and back: the same file
		{"modify", false},
		{"truncate", false},
		{"remade", false}, // removed, then a file of its size made at its name
	}
	vs := map[string]string{}
	for _, c := range cases {
		vs[c.name] = w.save("d/"+c.name+".csv", []byte("a,b\n1,2\n")).UID
	}
	tr := &commTracker{comm: "python3"}
	w.mountTracked(tr)
	script := filepath.Join(w.tmp, "edit.py")
	if err := os.WriteFile(script, []byte(backupEdit), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := "d/" + c.name + ".csv"
			w.sh("python3 " + script + " " + key + " " + c.name)
			got := w.eventually(key, 2)
			if got[0].UID != vs[c.name] {
				t.Fatalf("%s@v1 is %s, want %s", key, got[0].UID, vs[c.name])
			}
			v, ok := tr.usedKeys()[key]
			switch {
			case c.credit && !ok:
				t.Fatalf("%s: the read of its backup %s~ recorded no input", key, key)
			case c.credit && v.UID != vs[c.name]:
				t.Fatalf("%s: input %s, want v1 %s", key, v.UID, vs[c.name])
			case !c.credit && ok:
				t.Fatalf("%s: the backup was modified before the read, yet %s (%s) was recorded as an input", key, v.Ref(), v.UID)
			}
		})
	}
}

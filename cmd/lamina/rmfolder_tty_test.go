package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// TestRmRecursiveFolderArtifactAtTerminal: `rm -r` of a folder artifact by
// a user other than root at a terminal. rm then asks access(W_OK) of each
// file before it unlinks it (to ask about write-protected files), and the
// mount's EROFS made it report every file and keep them: the W_OK of that
// rm is 0, while `test -w` still finds the files read-only. A process
// that leaves a file of a subfolder (as rm does when its user answers "n"
// or a file is refused) and then rmdirs the subfolder, as rm does, gets
// ENOTEMPTY and trashes nothing: the rmdir trashed the whole artifact.
// The mount runs as nobody, as do rm and the stand-in.
func TestRmRecursiveFolderArtifactAtTerminal(t *testing.T) {
	dir, run, sh := asNobody(t)
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Fatal("fusermount3 is not installed (apt-get install fuse3)")
	}
	if out, err := run("init", "--storage", dir+"/storage", "--name", "nobody"); err != nil {
		t.Fatalf("init as nobody: %v\n%s", err, out)
	}
	if out, err := sh(`mkdir -p src/d.zarr/X mnt stand && echo '{}' > src/d.zarr/.zgroup &&
		echo '{"shape":[1]}' > src/d.zarr/X/.zarray && echo chunk > src/d.zarr/X/0 &&
		ln -s /usr/bin/python3 stand/rm`); err != nil {
		t.Fatal(out)
	}
	for _, key := range []string{"z/d.zarr", "v/d.zarr"} {
		if out, err := run("save", "src/d.zarr", "--key", key); err != nil {
			t.Fatalf("save %s: %v\n%s", key, err, out)
		}
	}
	if out, err := run("mount", "mnt"); err != nil {
		t.Fatalf("mount as nobody: %v\n%s", err, out)
	}
	t.Cleanup(func() { run("umount", "mnt") })
	trashed := func(key string) bool {
		out, err := run("ls", "--trash")
		if err != nil {
			t.Fatalf("ls --trash: %v\n%s", err, out)
		}
		return strings.Contains(out, key)
	}
	// rm as nobody with a terminal for its stdin, the answers typed there.
	// Its questions go to out: the test asks for none.
	rmAtTerminal := func(answers string, args ...string) (string, error) {
		master, slave := openPty(t)
		// ^D ends the input: a question more reads no answer ("no")
		// rather than waiting for one.
		if _, err := master.WriteString(answers + "\x04"); err != nil {
			t.Fatal(err)
		}
		c := nobodyCmd(dir, "rm", args...)
		var out bytes.Buffer
		c.Stdin, c.Stdout, c.Stderr = slave, &out, &out
		err := c.Run()
		return out.String(), err
	}

	if out, _ := sh("test -w mnt/z/d.zarr/X/0 && echo writable"); out != "" {
		t.Fatalf("test -w of a file of a folder artifact: %q", out)
	}
	// rm of a subfolder takes no artifact: its files stay read-only.
	if out, err := rmAtTerminal("", "-r", "mnt/z/d.zarr/X"); err == nil || !strings.Contains(out, "Read-only file system") || trashed("z/d.zarr") {
		t.Fatalf("rm -r of a subfolder of a folder artifact: %v\n%s", err, out)
	}

	// The stand-in: a single-threaded process named rm, given -r and the
	// artifact, whose first removal inside is an rmdir of a subfolder.
	out, err := sh(`stand/rm -c 'import os
try:
    os.rmdir("mnt/z/d.zarr/X")
    print("removed")
except OSError as e:
    print(os.strerror(e.errno))' -r mnt/z/d.zarr`)
	if err != nil || out != "Directory not empty\n" {
		t.Fatalf("rmdir of a subfolder of a folder artifact by an rm -r that unlinked nothing: %v, %q", err, out)
	}
	if trashed("z/d.zarr") {
		t.Fatal("rm's rmdir of a subfolder it left a file in moved the artifact to the trash")
	}
	if out, err := sh("cat mnt/z/d.zarr/X/0"); err != nil || out != "chunk\n" {
		t.Fatalf("after the refused rmdir: %v, %q", err, out)
	}

	if out, err := rmAtTerminal("", "-r", "mnt/z/d.zarr"); err != nil || out != "" {
		t.Fatalf("rm -r of a folder artifact at a terminal: %v\n%s", err, out)
	}
	if out, _ := sh("test -e mnt/z/d.zarr || echo gone"); out != "gone\n" || !trashed("z/d.zarr") {
		t.Fatalf("after rm -r at a terminal: %q, trashed %v", out, trashed("z/d.zarr"))
	}

	// Versions listed: rm -r of a folder above takes the version's tree
	// too; rm -r of KEY@v1 is EROFS, as for a file's KEY@vN.
	if out, err := run("umount", "mnt"); err != nil {
		t.Fatal(out)
	}
	if out, err := run("mount", "mnt", "--show-versions"); err != nil {
		t.Fatalf("mount --show-versions: %v\n%s", err, out)
	}
	if out, err := rmAtTerminal("", "-r", "mnt/v/d.zarr@v1"); err == nil || !strings.Contains(out, "Read-only file system") || trashed("v/d.zarr") {
		t.Fatalf("rm -r of KEY@v1 at a terminal: %v\n%s", err, out)
	}
	if out, err := rmAtTerminal("", "-r", "mnt/v"); err != nil || out != "" || !trashed("v/d.zarr") {
		t.Fatalf("rm -r of the folder above, versions listed, at a terminal: %v\n%s", err, out)
	}
}

package main

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/instance"
	"golang.org/x/sys/unix"
)

// An init refused for a root inside another instance's leaves no folder
// in the other's root (audit 28), and the name free for the next init,
// which reuses the catalog and cache folders the refused one made (they
// stay: audit 33).
func TestInitRefusedLeavesNothing(t *testing.T) {
	e := newEnv(t)
	e.init()
	inside := filepath.Join(e.path("storage"), "mine", "deeper")
	e.fails("is inside "+e.path("storage")+", the storage root of another instance", "init", "--storage", inside, "--name", "nested")
	if _, err := os.Lstat(filepath.Join(e.path("storage"), "mine")); !os.IsNotExist(err) {
		t.Errorf("the refused init left its storage folder in the other's root (%v)", err)
	}
	// Its data folder stays: what was there may be another command's now.
	if _, err := os.Lstat(filepath.Join(e.dir, "data", "lamina", "nested")); err != nil {
		t.Errorf("the refused init removed the data folder of its name: %v", err)
	}
	// A folder that existed already stays, with what it holds.
	mine := e.write("storage/mine/keep.txt", []byte("mine"))
	e.fails("is inside", "init", "--storage", filepath.Dir(mine), "--name", "nested")
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("the refused init removed a file of the user's: %v", err)
	}
	e.ok("init", "--storage", e.path("elsewhere"), "--name", "nested") // the name is free
}

// Roots nested before init refused them keep their migration path
// (export-catalog, init --take-over): the take-over of either one, which
// holds an instance.json already, warns instead of refusing (audit 28).
func TestTakeOverOfRootsNestedBefore(t *testing.T) {
	e := newEnv(t)
	e.init() // "test" at storage
	outer := e.path("storage")
	claim := filepath.Join(outer, "instance.json")
	b, err := os.ReadFile(claim)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(claim)
	inner := filepath.Join(outer, "records", "inner")
	e.ok("init", "--storage", inner, "--name", "inner")
	if err := os.WriteFile(claim, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.fails("holds "+inner+", the storage root of another instance", "init", "--storage", outer, "--name", "outer2")
	for _, c := range []struct{ root, name, want string }{
		{outer, "outer2", "holds " + inner + ", the storage root of another instance; taken over anyway"},
		{inner, "inner2", "is inside " + outer + ", the storage root of another instance; taken over anyway"},
	} {
		_, errs, err := e.run("init", "--storage", c.root, "--name", c.name, "--take-over")
		if err != nil || !strings.Contains(errs, "lamina: warning: "+c.root) || !strings.Contains(errs, c.want) {
			t.Errorf("init --take-over of %s: %v\n%s", c.root, err, errs)
		}
	}
	// A new root inside one is refused, --take-over or not.
	e.fails("is inside", "init", "--storage", filepath.Join(inner, "new"), "--name", "new", "--take-over")
}

// A local root holding a folder this user may not open (another user's)
// is not refused: init warns that it could not look inside (audit 28: it
// failed with "storage: list : open …/locked: permission denied"). Run
// as nobody when the tests run as root, who may open any folder.
func TestInitRootWithUnreadableFolder(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} { // made 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(base, "storage")
	locked := filepath.Join(root, "locked")
	if err := os.MkdirAll(filepath.Join(locked, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + base + "/home", "XDG_CONFIG_HOME=" + base + "/cfg", "XDG_DATA_HOME=" + base + "/data",
		"XDG_CACHE_HOME=" + base + "/cache", "XDG_RUNTIME_DIR=" + base + "/run", "LAMINA_INSTANCE=", "PATH=/usr/bin:/bin"}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = &syscall.Credential{Uid: 65534, Gid: 65534}
		for _, d := range []string{root, base + "/home", base + "/cfg", base + "/data", base + "/cache", base + "/run"} {
			os.MkdirAll(d, 0o755)
			if err := os.Chown(d, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		os.Chmod(base+"/run", 0o700)
		if err := os.Chmod(locked, 0o700); err != nil { // root's: nobody may not open it
			t.Fatal(err)
		}
	} else {
		if err := os.Chmod(locked, 0); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(locked, 0o755)
	}
	bin := mntBinary(t)
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "init", "--storage", root, "--name", "x")
	cmd.Env, cmd.Dir = env, base
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("init of a root holding a folder it may not read: %v\n%s", err, errb.String())
	}
	if want := "warning: cannot check whether " + locked + " holds an instance: permission denied"; !strings.Contains(errb.String(), want) {
		t.Errorf("no %q in:\n%s", want, errb.String())
	}
}

// Two inits of one name run one after the other: a refused (or failing)
// init removes the folders it made, and an init of the name that ran
// meanwhile had its catalog there, so a save to it was lost (audit 32).
func TestInitOfANameWaitsForAnotherInit(t *testing.T) {
	e := newEnv(t)
	dirs, err := instance.UserDirs()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dirs.Config, "instances"), 0o700)
	held, err := os.OpenFile(filepath.Join(dirs.Config, "instances", ".w.init-lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(held.Fd()), unix.LOCK_EX); err != nil { // another init of w
		t.Fatal(err)
	}
	var errs lockedBuffer // read while the init writes
	done := make(chan error, 1)
	go func() {
		done <- Main([]string{"lamina", "init", "--storage", e.path("w-storage"), "--name", "w"}, io.Discard, &errs)
	}()
	// It waits, and says so (not a time that a loaded machine may take to
	// get it there).
	const waiting = `waiting for another lamina init of "w"`
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(errs.String(), waiting); time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("init of w ran while another init of w held the name: %v\n%s", err, errs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("init of w does not say it waits after 60 s:\n%s", errs.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dirs.Data, "w")); !os.IsNotExist(err) {
		t.Errorf("the waiting init made its data folder: %v", err)
	}
	held.Close() // the other init ends
	if err := <-done; err != nil {
		t.Fatalf("init after the other: %v\n%s", err, errs.String())
	}
	e.ok("save", e.write("f.txt", []byte("kept\n")), "--key", "f.txt", "--instance", "w")
}

// Ctrl-C stops an init whose S3 endpoint accepts connections and never
// answers: the bucket check ran under a context no signal cancelled, so
// the init went on for its minute (audit 33).
func TestInitInterruptedWhileS3Hangs(t *testing.T) {
	e := newMntEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accepts, reads, never answers
		for range 64 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			go io.Copy(io.Discard, c)
		}
	}()
	cmd := exec.Command(e.bin, "init", "--name", "hung", "--storage", "s3://bucket/p", "--endpoint", "http://"+ln.Addr().String(), "--region", "us-east-1", "--path-style")
	cmd.Env = append(slices.Clone(e.env), "AWS_ACCESS_KEY_ID=ak", "AWS_SECRET_ACCESS_KEY=sk", "AWS_PROFILE=", "AWS_CONFIG_FILE=/dev/null")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(time.Second)
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		if err == nil {
			t.Error("an interrupted init succeeded")
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("init went on 20 s after Ctrl-C")
	}
}

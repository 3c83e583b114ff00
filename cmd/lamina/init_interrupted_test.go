package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
	"github.com/lamina-bio/lamina/instance"
)

// An init killed after it claimed the storage (instance.json) and before
// it wrote its settings left a claim that made the same init refuse for
// good, advising export-catalog. Now the claim of this machine's own
// interrupted init (its host, its catalog, no data in the root) is taken
// for the new init with a warning; any other claim of that name is
// refused saying what happened (an interrupted init, when, from which
// host) and giving the exact init --take-over command.
func TestInitAfterAnInterruptedInit(t *testing.T) {
	e := newEnv(t)
	store := e.path("my store") // a space: the command must quote it
	settings := filepath.Join(e.dir, "config", "lamina", "instances", "team.json")
	claim := filepath.Join(store, "instance.json")
	// interrupt makes the init that ran last look interrupted after it
	// claimed the storage: no settings, its record (MarkInit) left.
	interrupt := func(edit func(o map[string]any)) {
		t.Helper()
		leaveInitRecord(t, instance.Dirs{Config: filepath.Join(e.dir, "config", "lamina")}, "team")
		if err := os.Remove(settings); err != nil {
			t.Fatal(err)
		}
		if edit == nil {
			return
		}
		var o map[string]any
		b, _ := os.ReadFile(claim)
		if err := json.Unmarshal(b, &o); err != nil {
			t.Fatal(err)
		}
		edit(o)
		b, _ = json.Marshal(o)
		os.WriteFile(claim, b, 0o644)
	}
	owner := func() (o instance.Owner) {
		t.Helper()
		b, _ := os.ReadFile(claim)
		json.Unmarshal(b, &o)
		return o
	}
	e.ok("init", "--storage", store, "--name", "team")
	var raw map[string]any
	b, _ := os.ReadFile(claim)
	if h, _ := os.Hostname(); json.Unmarshal(b, &raw) != nil || raw["host"] != h {
		t.Fatalf("the claim does not name this host: %s", b)
	}

	// This machine's own interrupted init: taken, with a warning.
	interrupt(nil)
	_, stderr, err := e.run("init", "--storage", store, "--name", "team")
	if err != nil || !strings.Contains(stderr, "did not finish") {
		t.Fatalf("init after an interrupted one: %v\n%s", err, stderr)
	}
	s, err := instance.Dirs{Config: filepath.Join(e.dir, "config", "lamina")}.Load("team")
	if err != nil || owner().ID != s.ID {
		t.Fatalf("claim %+v, settings %+v (%v)", owner(), s, err)
	}

	// Another host's claim (a team's S3 root): maybe a real instance.
	interrupt(func(o map[string]any) { o["host"] = "elsewhere" })
	cmd := "lamina init --storage '" + store + "' --name team --take-over"
	for _, want := range []string{"claimed by an init on host elsewhere at ", "interrupted before it wrote its settings", "another host", "`" + cmd + "`"} {
		e.fails(want, "init", "--storage", store, "--name", "team")
	}
	if err := e.fails("", "init", "--storage", store, "--name", "team"); strings.Contains(err.Error(), "export-catalog") {
		t.Errorf("advice that does not fit: %v", err)
	}
	e.ok("init", "--storage", store, "--name", "team", "--take-over") // what the message says

	// An older lamina's claim says no host.
	interrupt(func(o map[string]any) { delete(o, "host") })
	e.fails("an older lamina wrote it", "init", "--storage", store, "--name", "team")
	e.ok("init", "--storage", store, "--name", "team", "--take-over")

	// Data in the root: it was used, so not taken without --take-over.
	e.ok("save", e.write("a.txt", []byte("a")), "--key", "a.txt")
	interrupt(nil)
	e.fails("the storage holds data of it (packs)", "init", "--storage", store, "--name", "team")

	// A claim of another name keeps its advice.
	e.fails("export-catalog", "init", "--storage", store, "--name", "other")
}

// On a team's S3 root: this workstation's interrupted init is taken by the
// next; another workstation's instance of that name (here: same host, its
// own catalog) is refused, with the command of the flags given.
func TestS3InitAfterAnInterruptedInit(t *testing.T) {
	e := newS3Env(t) // instance s3 at s3://bucket/lab
	flags := []string{"init", "--storage", "s3://" + e.bucket + "/lab", "--name", "s3", "--endpoint", e.srv.Endpoint, "--region", "us-east-1", "--path-style"}
	leaveInitRecord(t, instance.Dirs{Config: filepath.Join(e.dir, "cfg", "lamina")}, "s3")
	if err := os.Remove(filepath.Join(e.dir, "cfg", "lamina", "instances", "s3.json")); err != nil {
		t.Fatal(err)
	}
	if _, errs, err := e.run(flags...); err != nil || !strings.Contains(errs, "did not finish") {
		t.Fatalf("init after an interrupted one: %v\n%s", err, errs)
	}
	other := workstation(t, "other", e.srv)
	other.fails("because it names another catalog", flags...)
	other.fails("`lamina init --storage s3://"+e.bucket+"/lab --name s3 --endpoint "+e.srv.Endpoint+" --region us-east-1 --path-style --take-over`", flags...)
}

// leaveInitRecord writes the record an init interrupted after its claim
// leaves in the data folder of instance name (instance.MarkInit), as the
// init that set it up would have, had it stopped before its settings.
func leaveInitRecord(t *testing.T, dirs instance.Dirs, name string) {
	t.Helper()
	s, err := dirs.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := instance.New(s, nil, nil, nil).MarkInit(); err != nil {
		t.Fatal(err)
	}
}

// The claim of an instance of the same name, same host and same catalog
// path, with no data in the root, was taken for a new init: but host names
// and home folders repeat (two VMs named ubuntu, HOME=/home/ubuntu), so it
// may be another machine's live instance, which the take-over would have
// turned read-only. Only a claim this user's own interrupted init left (its
// record in the data folder) is taken.
func TestInitDoesNotTakeAClaimItDidNotLeave(t *testing.T) {
	e := newEnv(t)
	store := e.path("store")
	e.ok("init", "--storage", store, "--name", "team")
	claim, _ := os.ReadFile(filepath.Join(store, "instance.json"))
	// This machine has never had it: "another machine" of the same host
	// name and home folder.
	if err := os.Remove(filepath.Join(e.dir, "config", "lamina", "instances", "team.json")); err != nil {
		t.Fatal(err)
	}
	e.fails("no init of this user here left it", "init", "--storage", store, "--name", "team")
	if now, _ := os.ReadFile(filepath.Join(store, "instance.json")); !bytes.Equal(now, claim) {
		t.Errorf("the claim changed:\n%s\nwas\n%s", now, claim)
	}
}

// A second workstation's init of a team's instance (same host, another
// home, the same database and storage, no data yet) was told the storage's
// claim was "taken for this one" before the database refused the init:
// nothing was taken. The database's refusal comes first, alone.
func TestInitOfATeamsInstanceOnASecondWorkstation(t *testing.T) {
	db := pgtest.URL(t)
	a := workstationEnv(t, "ana")
	store := filepath.Join(a.dir, "store")
	a.ok("init", "--storage", store, "--name", "team", "--db", db)
	claim, _ := os.ReadFile(filepath.Join(store, "instance.json"))
	b := workstationEnv(t, "bo")
	_, errs, err := b.run("init", "--storage", store, "--name", "team", "--db", db)
	if err == nil || !strings.Contains(errs, "already holds instance \"team\"") || !strings.Contains(errs, "lamina connect team") {
		t.Fatalf("a second init of the team's instance: %v\n%s", err, errs)
	}
	if strings.Contains(errs, "taken for this one") || strings.Contains(errs, "did not finish") {
		t.Errorf("the init said it took the claim:\n%s", errs)
	}
	if now, _ := os.ReadFile(filepath.Join(store, "instance.json")); !bytes.Equal(now, claim) {
		t.Errorf("the claim changed:\n%s\nwas\n%s", now, claim)
	}
	b.ok("connect", "team", "--db", db)
}

// An init --db killed between registering the instance in the database
// and claiming the storage left no claim: connect succeeded without one,
// and another init could take the storage (this instance's saves then
// said it had been taken over). connect writes the claim init would have.
func TestConnectClaimsUnclaimedStorage(t *testing.T) {
	db := pgtest.URL(t)
	a := workstationEnv(t, "ana")
	store := filepath.Join(a.dir, "store")
	a.ok("init", "--storage", store, "--name", "lab", "--db", db)
	claim := filepath.Join(store, "instance.json")
	b, _ := os.ReadFile(claim)
	var want instance.Owner
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	os.Remove(claim) // the init was killed before it claimed the storage

	c := workstationEnv(t, "cy")
	if out := c.ok("connect", "lab", "--db", db); !strings.Contains(out, "had no owner record") {
		t.Errorf("connect said nothing of the claim it wrote:\n%s", out)
	}
	var got instance.Owner
	b, _ = os.ReadFile(claim)
	if err := json.Unmarshal(b, &got); err != nil || got.ID != want.ID || got.Name != "lab" || got.Catalog != want.Catalog {
		t.Fatalf("claim after connect: %s (%v); want that of %+v", b, err, want)
	}
	c.fails("holds instance \"lab\"", "init", "--storage", store, "--name", "other")
	if out := workstationEnv(t, "dee").ok("connect", "lab", "--db", db); strings.Contains(out, "owner record") {
		t.Errorf("a second connect claimed again:\n%s", out)
	}
}

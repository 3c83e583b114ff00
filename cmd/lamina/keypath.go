package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/mountinfo"
	"github.com/lamina-bio/lamina/ref"
	"github.com/urfave/cli/v2"
)

// A KEY argument may name a path in a mount of the instance, as a user
// working in one types it: `lamina lineage ~/lab/exp/out.csv@v2`, or in
// the mount `lamina show ./out.csv`. An argument is a path when it is
// absolute (no key starts with '/'), starts with ./ or ../ (or is . or
// ..), or is any relative name while the current folder is in a lamina
// mount: there a name is read from the current folder, as the shell, git
// and a Snakemake rule read it (a script in a mount's subfolder that names
// keys from the root gives them as paths, or runs outside the mount).
// Outside a mount a bare name is a key, exactly as before. A path is mapped
// to its key by name against the mount points /proc/self/mountinfo shows:
// nothing in a lamina mount is looked at (a hung daemon would hang the
// CLI), so its symbolic links are not followed, and a '..' there is the
// parent by name; outside the mounts each part is lstat'ed and a symbolic
// link followed, as the kernel would (~/lab -> /mnt/lab). The last name may
// end in @vN (that version) or .meta (the sidecar: the version it
// describes).

// keyArg is a KEY argument as the catalog reads it.
type keyArg struct {
	Spec string // KEY, KEY@vN, FOLDER/ or a uid: the argument itself unless it was a path
	Path bool   // the argument was a path into the mount
	Bare bool   // a path because it was a relative name given in a mount
	Meta bool   // the path named a sidecar (NAME.meta): Spec is the version it describes
}

// keyPaths maps the KEY arguments of one command for instance name.
type keyPaths struct {
	name    string
	mounts  []mountinfo.Mount // read when a path needs them
	read    bool
	dev     string // the device of the instance's mount as its daemon recorded it (mount.json), if mounted
	cwd     string // the current folder as the kernel names it (getcwd), "" if unknown
	cwdLost bool   // getcwd failed: the current folder is removed or on a detached mount
	gone    string // the removed current folder's name, if /proc says it was removed
	// isUID reports whether a bare name in the mount is a uid (prefix)
	// of the catalog, which then wins over the path; nil: it is a path.
	isUID func(string) bool
}

func newKeyPaths(name string) *keyPaths {
	// getcwd(2) rather than os.Getwd, which stats "." and $PWD: in a
	// mount that is a request to its daemon.
	kp := &keyPaths{name: name}
	cwd, err := syscall.Getwd()
	if err == nil && strings.HasPrefix(cwd, "/") {
		kp.cwd = cwd
		return kp
	}
	// A folder of a mount that only its keys made vanishes with its last
	// key while a shell still sits in it (getcwd: ENOENT), and a folder
	// of a mount detached under the shell (a daemon that died, umount
	// --force) is named from the detached mount's root. A bare name there
	// must not fall back to a key from the root: `lamina delete
	// --permanent out.csv` would delete the root's out.csv. The link in
	// /proc names a removed folder with " (deleted)", read as text; only
	// such a folder outside every lamina mount lets a bare name be a key.
	kp.cwdLost = true
	if l, err := os.Readlink("/proc/self/cwd"); err == nil {
		if gone, ok := strings.CutSuffix(l, " (deleted)"); ok && strings.HasPrefix(gone, "/") {
			kp.gone = gone
		}
	}
	return kp
}

func (kp *keyPaths) readMounts() {
	if kp.read {
		return
	}
	kp.read = true
	kp.mounts = mountinfo.Read()
	dirs, err := instance.UserDirs()
	if err != nil {
		return
	}
	live := func(st mountState) bool {
		return slices.ContainsFunc(kp.mounts, func(m mountinfo.Mount) bool {
			return st.Dev != "" && m.Dev == st.Dev && m.Source == "lamina:"+kp.name
		})
	}
	if st, err := readState(dirs, kp.name); err == nil && live(st) {
		kp.dev = st.Dev
		return
	}
	// A daemon started under another XDG_RUNTIME_DIR (cron, sudo -u,
	// another login) keeps its state there; the socket link names it,
	// as status finds it (linkedMount).
	if s, err := dirs.Load(kp.name); err == nil {
		if rt, ok := dirs.LinkedRuntime(s); ok && rt != dirs.Runtime {
			other := dirs
			other.Runtime = rt
			if st, err := readState(other, kp.name); err == nil && live(st) {
				kp.dev = st.Dev
			}
		}
	}
}

func isLaminaMount(m mountinfo.Mount) bool { return strings.HasPrefix(m.Source, "lamina:") }

// ours reports whether the lamina mount m is of this instance: the one its
// daemon recorded (by device: names are not unique across homes).
func (kp *keyPaths) ours(m mountinfo.Mount) bool {
	if m.Source != "lamina:"+kp.name {
		return false
	}
	if kp.dev != "" {
		return m.Dev == kp.dev
	}
	// Not mounted by its daemon (no mount.json naming a live mount): a
	// mount of that name is another home's instance, even this user's.
	return false
}

// innermost is the mount p (absolute, clean) is in: the longest mount
// point above it, the later of two at one place (the one on top).
func (kp *keyPaths) innermost(p string) (mountinfo.Mount, bool) {
	var found mountinfo.Mount
	best := -1
	for _, m := range kp.mounts {
		d := strings.TrimSuffix(m.Dir, "/")
		if (p == m.Dir || p == d || strings.HasPrefix(p, d+"/")) && len(d) >= best {
			found, best = m, len(d)
		}
	}
	return found, best >= 0
}

// inOwnMount reports whether the current folder is in this instance's
// mount.
func (kp *keyPaths) inOwnMount() bool {
	if kp.cwd == "" {
		return false
	}
	kp.readMounts()
	m, ok := kp.inLamina(kp.cwd)
	return ok && kp.ours(m)
}

// inLamina reports the lamina mount p is in, if it is in one.
func (kp *keyPaths) inLamina(p string) (mountinfo.Mount, bool) {
	m, ok := kp.innermost(p)
	return m, ok && isLaminaMount(m)
}

// locate resolves the absolute path p as the kernel would, but never
// looks into a lamina mount: outside them each part is lstat'ed and a
// symbolic link followed; in one the rest goes by name. false: a part
// outside the mounts does not exist, or too many links.
func (kp *keyPaths) locate(p string) (string, bool) {
	rest := strings.Split(p, "/")
	cur := "/"
	for links := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur) // cur has no symbolic link: by name
			continue
		}
		next := path.Join(cur, c)
		if _, ok := kp.inLamina(next); ok {
			cur = next
			continue
		}
		fi, err := os.Lstat(next)
		if err != nil {
			return "", false
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			t, err := os.Readlink(next)
			if links++; err != nil || links > 40 {
				return "", false
			}
			if strings.HasPrefix(t, "/") {
				cur = "/"
			}
			rest = append(strings.Split(t, "/"), rest...)
			continue
		}
		cur = next
	}
	return cur, true
}

// isPath reports whether the argument a is written as a path: absolute,
// or starting with ./ or ../.
func isPath(a string) bool {
	return strings.HasPrefix(a, "/") || a == "." || a == ".." || strings.HasPrefix(a, "./") || strings.HasPrefix(a, "../")
}

// arg maps the KEY argument a: a key stays as it is; a path into the
// instance's mount becomes its key (the mount's root: "", refused unless
// root). A path elsewhere is a usage error (exit 2) that says where it is.
func (kp *keyPaths) arg(a string, root bool) (keyArg, error) {
	if a == "" {
		return keyArg{Spec: a}, nil
	}
	bare := !isPath(a)
	if bare {
		if kp.cwd == "" {
			if !kp.cwdLost {
				return keyArg{Spec: a}, nil
			}
			kp.readMounts()
			if _, in := kp.inLamina(path.Clean(kp.gone)); kp.gone == "" || in {
				return keyArg{}, exitf(2, "%s: the current folder is gone from the mount (its last key removed, or the mount restarted under it): cd to a folder that exists, or give a path", a)
			}
			return keyArg{Spec: a}, nil // a removed folder outside the mounts: a key, as there
		}
		kp.readMounts()
		if _, ok := kp.inLamina(kp.cwd); !ok {
			return keyArg{Spec: a}, nil // outside a mount: a key
		}
		if kp.isUID != nil && !strings.ContainsAny(a, "/.") {
			if s, err := ref.ParseSpec(a); err == nil && s.UID != "" && kp.isUID(a) {
				return keyArg{Spec: a}, nil
			}
		}
	}
	kp.readMounts()
	p := a
	if !strings.HasPrefix(a, "/") {
		if kp.cwd == "" {
			return keyArg{}, exitf(2, "%s is a path, and the current folder is unknown: give the key, or an absolute path", a)
		}
		p = kp.cwd + "/" + a
	}
	real, found := kp.locate(p)
	shown := a // the argument, and the path it is where that differs
	if real != "" && real != a {
		shown = fmt.Sprintf("%s (%s)", a, real)
	}
	m, in := kp.inLamina(real)
	if !found || !in {
		if own := kp.mountpoint(); own != "" {
			return keyArg{}, exitf(2, "%s is not in the mount of instance %q (at %s): give a key, or a path under %s", shown, kp.name, own, own)
		}
		return keyArg{}, exitf(2, "%s is a path, not a key, and instance %q is not mounted: give its key (lamina ls lists them)", shown, kp.name)
	}
	if !kp.ours(m) {
		other := strings.TrimPrefix(m.Source, "lamina:")
		note := ""
		if bare {
			note = " (a name given in a mount is a path from the current folder: run outside it to give a key)"
		}
		if other == kp.name {
			// Another home's instance of that name, or a mount whose
			// daemon's state this CLI cannot find.
			return keyArg{}, exitf(2, "%s is in a mount at %s of an instance named %q that is not this one's (another home's, or one `lamina status` does not list here): give a key%s", shown, m.Dir, other, note)
		}
		return keyArg{}, exitf(2, "%s is in the mount of instance %q at %s, not of %q: use --instance %s%s", shown, other, m.Dir, kp.name, other, note)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(real, strings.TrimSuffix(m.Dir, "/")), "/")
	key := strings.TrimPrefix(path.Join(m.Root, rel), "/") // a bind mount shows a folder of it
	k := keyArg{Path: true, Bare: bare}
	folder := strings.HasSuffix(a, "/") || a == "." || a == ".." || strings.HasSuffix(a, "/.") || strings.HasSuffix(a, "/..")
	if t, ok := strings.CutSuffix(key, ".meta"); ok && !folder && t != "" {
		key, k.Meta = t, true // no key ends in .meta: the sidecar's version
	}
	if key == "" && !root {
		return keyArg{}, exitf(2, "%s is the root of the mount of %q, a folder of keys, not an artifact: give the path of one (`lamina ls` lists them)", shown, kp.name)
	}
	if folder && key != "" {
		key += "/"
	}
	k.Spec = key
	return k, nil
}

// folderOfKeys refuses a folder given where a key is expected (show DIR/,
// get DIR/, ls --versions DIR/, lineage DIR/): a usage error, exit 2, that
// says what lists it, as delete's does (folderDelete). nil when spec does
// not end in '/' or no live key is under it: then the key's own check says
// what is wrong with it. A folder artifact (scrna/pbmc.zarr/) is the
// caller's to take first.
func folderOfKeys(ctx context.Context, cat catalog.Catalog, spec string) error {
	dir, ok := strings.CutSuffix(spec, "/")
	if !ok || ref.CheckExistingKey(dir) != nil {
		return nil
	}
	if vs, err := cat.List(ctx, catalog.Query{Prefix: spec, Limit: 1}); err != nil || len(vs) == 0 {
		return nil
	}
	return exitf(exitUsage, "%s/ is a folder of keys, not an artifact: give the key of one (`lamina ls %s/` lists them)", dir, dir)
}

// folderNamed turns err, the catalog's not-found for spec, into a usage
// error (exit 2) when spec names no artifact but keys are under spec/: a
// folder named without its '/' (show experiments), said as folderOfKeys
// says DIR/; or when spec is a symbolic link (ln -s in the mount), which
// it names with its target. Any other err is returned as it is.
func folderNamed(ctx context.Context, cat catalog.Catalog, spec string, err error) error {
	if !errors.Is(err, catalog.ErrNotFound) || strings.HasSuffix(spec, "/") {
		return err
	}
	if key, _, ok := ref.SplitVersion(spec); ok {
		// KEY@vN of a link: not "no artifact", which tells nothing of
		// the link there.
		if l, ok := linkAt(ctx, cat, key); ok && ref.CheckExistingKey(key) == nil {
			return exitf(exitUsage, "%s: %s, not an artifact, and links have no versions: give the key or path of what it points to", spec, l)
		}
		return err
	}
	if ref.CheckExistingKey(spec) != nil {
		return err
	}
	if l, ok := linkAt(ctx, cat, spec); ok {
		return exitf(exitUsage, "%s, not an artifact: give the key or path of what it points to", l)
	}
	if vs, lerr := cat.List(ctx, catalog.Query{Prefix: spec + "/", Limit: 1}); lerr != nil || len(vs) == 0 {
		return err
	}
	return exitf(exitUsage, "no artifact has key %q; %s/ is a folder of keys: `lamina ls %s/` lists them", spec, spec, spec)
}

// linkAt says "KEY is a symbolic link to TARGET (key T)" when key is a
// live symbolic link (ln -s in the mount); ok is false when it is none.
func linkAt(ctx context.Context, cat catalog.Catalog, key string) (string, bool) {
	parent := key[:strings.LastIndexByte(key, '/')+1]
	d, err := cat.Children(ctx, parent)
	if err != nil {
		return "", false
	}
	for _, l := range d.Links {
		if l.Key != key {
			continue
		}
		target := ""
		if t := path.Join(parent, l.Target); !strings.HasPrefix(l.Target, "/") && ref.CheckExistingKey(t) == nil {
			target = fmt.Sprintf(" (key %s)", t)
		}
		return fmt.Sprintf("%s is a symbolic link to %s%s", key, l.Target, target), true
	}
	return "", false
}

// mountpoint is where the instance is mounted, "" if it is not.
func (kp *keyPaths) mountpoint() string {
	for _, m := range kp.mounts {
		if isLaminaMount(m) && kp.ours(m) && (m.Root == "/" || m.Root == "") {
			return m.Dir
		}
	}
	return ""
}

// note is what to add to an error about the key k names: that a name
// given in a mount was read as a path from the current folder.
func (k keyArg) note() string {
	if k.Bare {
		return fmt.Sprintf(" (a name given in a mount is a path from the current folder: %s)", k.Spec)
	}
	return ""
}

// withUIDs makes a bare name given in a mount that is a uid (prefix) in
// cat that uid: a uid reads as one wherever it is typed.
func (kp *keyPaths) withUIDs(ctx context.Context, cat catalog.Catalog) *keyPaths {
	kp.isUID = func(uid string) bool {
		_, err := cat.ByUID(ctx, uid)
		return !errors.Is(err, catalog.ErrNotFound) // another error: said by the lookup that follows
	}
	return kp
}

// keyPathsOf maps the KEY arguments of the command c runs: for the
// instance it selects (none known: every mount is another's).
func keyPathsOf(c *cli.Context) *keyPaths {
	_, s, _ := currentSettings(c) // open.go; an error is said when the instance opens
	return newKeyPaths(s.Name)
}

// keyArgs maps args to the specs the catalog reads.
func keyArgs(kp *keyPaths, args []string) ([]string, error) {
	out := make([]string, len(args))
	for i, a := range args {
		ka, err := kp.arg(a, false)
		if err != nil {
			return nil, err
		}
		out[i] = ka.Spec
	}
	return out, nil
}

package lineage

import (
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/lamina-bio/lamina/mountinfo"
)

// An output a Snakemake record names (snakemakeRecordOf) is matched to the
// keys its jobs wrote in the mount (recordedOutput): a relative one is a
// key (a record in the mount, its workdir joined), and an absolute one is
// mapped to a key, by outputKeys (through the mount's links too).

// outputKeys maps the outputs Snakemake's records name to keys: a key
// stays; an absolute path in the mount, or reached through a symlink or
// another mount of the same filesystem (a bind mount), becomes its key; a
// path that resolves outside the mount is dropped (no key is it, however
// its tail reads: DIR/x/wf/out/a.txt is not wf/out/a.txt); one whose
// folder cannot be resolved (gone, unreadable) stays absolute, and is
// matched by its tail (bySuffix). It reads off-mount paths only (lstat and
// readlink of each folder up to the mount, never one in it, nor in another
// mount of it): safe in a FUSE handler, and outside Tracker.mu. The links
// in the mount are the mount's own records (links, nil: none known), so a
// key written through one (wf/out -> data, wf/out/../x) is the key the job
// wrote; a key that resolves outside the mount is dropped too.
func outputKeys(outs []string, mountpoint string, links LinkReader) []string {
	if mountpoint == "" {
		for i, out := range outs {
			outs[i] = path.Clean(out)
		}
		return outs
	}
	r := resolver{mnt: strings.TrimSuffix(mountpoint, "/"), links: links}
	kept := outs[:0]
	for _, out := range outs {
		abs := out
		if !strings.HasPrefix(out, "/") {
			if links == nil {
				kept = append(kept, path.Clean(out))
				continue
			}
			abs = r.mnt + "/" + out
		}
		switch key, where := r.file(abs); where {
		case inMount:
			kept = append(kept, key)
		case unknown:
			kept = append(kept, path.Clean(out))
		}
	}
	return kept
}

// LinkReader returns the target of the symbolic link at key in the mount,
// false when key is no link (or unknown). It must not look at the mount
// through the kernel when called from its FUSE handlers: the mount's own
// records (fs.Mount.LinkTarget) do.
type LinkReader func(key string) (target string, ok bool)

// KeyResolver returns a function that maps an absolute path to its key
// in the mount at mountpoint as outputKeys does (through symlinks and bind
// mounts, and the mount's links as links reads them; nil: none), false
// when it is outside the mount or cannot be resolved. Not safe for
// concurrent use.
func KeyResolver(mountpoint string, links LinkReader) func(abs string) (string, bool) {
	r := resolver{mnt: strings.TrimSuffix(mountpoint, "/"), links: links}
	return func(abs string) (string, bool) {
		if mountpoint == "" || !strings.HasPrefix(abs, "/") {
			return "", false
		}
		if key, where := r.file(abs); where == inMount {
			return key, true
		}
		return "", false
	}
}

const (
	outside = iota
	inMount
	unknown
)

// resolver resolves folders for one outputKeys call: the folders of a
// drain's records are few, its records up to 100,000.
type resolver struct {
	mnt     string
	links   LinkReader        // the mount's links; nil: its keys go by name
	lks     map[string]string // links read, by key ("" for none)
	aliases map[string]string // other mounts of the mount's filesystem: mount point -> key prefix
	read    bool              // aliases read
	seen    map[string]dirKey
	// ents: each entry the walks lstat'ed, by its physical path (its
	// folder's symlinks resolved), so that each is looked at once per
	// resolver: 100,000 outputs in 100,000 folders lstat'ed every parent
	// again from "/" for each folder (2.5 s, in a FUSE handler).
	ents   map[string]entry
	lstats int // entries looked at, for tests
}

// entry is what lstat (and readlink, for a symlink) said of a path.
type entry struct {
	err    bool
	dir    bool
	target string // a symlink's target, "" if none
	link   bool
}

type dirKey struct {
	key   string
	where int
}

// file resolves the absolute path p's folder (dir): the key p is in the
// mount, if inMount.
func (r *resolver) file(p string) (string, int) {
	// Not cleaned first: "link/.." is the link's target's parent.
	dir, base := path.Split(p)
	if base == "" || base == "." || base == ".." {
		return "", outside
	}
	key, where := r.dir(dir)
	return path.Join(key, base), where
}

// dir resolves the absolute folder p (its symlinks followed) until it
// enters the mount: the key it is there, inMount; outside when it is a
// folder outside the mount; unknown when a part cannot be read.
func (r *resolver) dir(p string) (string, int) {
	if k, ok := r.seen[p]; ok {
		return k.key, k.where
	}
	key, where := r.resolve(p)
	if r.seen == nil {
		r.seen = map[string]dirKey{}
	}
	r.seen[p] = dirKey{key, where}
	return key, where
}

func (r *resolver) resolve(p string) (string, int) {
	// Under the mountpoint as written (no ".." that a symlink before it
	// could move): its key, no folder looked at but the mount's links.
	if !strings.Contains(p+"/", "/../") && r.links == nil {
		if key, ok := under(path.Clean(p), r.mnt, ""); ok {
			return key, inMount
		}
	}
	rest := strings.Split(p, "/")
	cur := "/"
	if rel, ok := strings.CutPrefix(p, r.mnt+"/"); ok && r.links != nil {
		if key, ok := r.noLinks(rel); ok {
			return key, inMount
		}
		rest, cur = strings.Split(rel, "/"), r.mnt
	}
	for links, entered := 0, 0; ; {
		if key, ok := r.mountKey(cur); ok {
			if r.links == nil {
				// In the mount, the rest goes by name (its symlinks are
				// not known), and a ".." may climb out of it again
				// (MNT/../MNT/k, MNT/../elsewhere): walked on from there.
				abs := path.Join(append([]string{cur}, rest...)...)
				if key, ok := r.mountKey(abs); ok {
					return key, inMount
				}
				if entered++; entered > 8 {
					return "", unknown
				}
				rest, cur = strings.Split(abs, "/"), "/"
				continue
			}
			if len(rest) == 0 {
				return key, inMount
			}
		} else if len(rest) == 0 {
			return "", outside
		}
		c := rest[0]
		rest = rest[1:]
		if c == "" || c == "." {
			continue
		}
		next := path.Join(cur, c) // cur has no symlinks: ".." is lexical
		if key, ok := r.mountKey(next); ok {
			// Never lstat a path in the mount (FUSE): a link there is
			// the mount's record of it, each part looked up once ("..":
			// cur's parent, no link).
			target, ok := "", false
			if c != ".." {
				target, ok = r.link(key)
			}
			if !ok {
				cur = next
				continue
			}
			if links++; links > 40 {
				return "", unknown
			}
			if strings.HasPrefix(target, "/") {
				cur = "/"
			}
			rest = append(strings.Split(target, "/"), rest...)
			continue
		}
		e := r.lstat(next)
		if e.err {
			return "", unknown
		}
		if e.link {
			if links++; links > 40 {
				return "", unknown
			}
			if strings.HasPrefix(e.target, "/") {
				cur = "/"
			}
			rest = append(strings.Split(e.target, "/"), rest...)
			continue
		}
		if !e.dir {
			return "", unknown
		}
		cur = next
	}
}

// noLinks returns the folder rel in the mount as its key when no part of
// it is a link (nor "." or ".."): most are, and this is the walk's answer
// without its allocations (100,000 folders: 0.9 s, then 0.2 s).
func (r *resolver) noLinks(rel string) (string, bool) {
	rel = strings.TrimSuffix(rel, "/")
	if rel == "" {
		return "", true
	}
	for i := 0; i <= len(rel); i++ {
		if i < len(rel) && rel[i] != '/' {
			continue
		}
		j := strings.LastIndexByte(rel[:i], '/') + 1
		if c := rel[j:i]; c == "" || c == "." || c == ".." {
			return "", false
		}
		if _, ok := r.link(rel[:i]); ok {
			return "", false
		}
	}
	return rel, true
}

// link returns the target of the mount's link at key, once per resolver.
func (r *resolver) link(key string) (string, bool) {
	if r.links == nil || key == "" {
		return "", false
	}
	t, ok := r.lks[key]
	if !ok {
		t, _ = r.links(key)
		if r.lks == nil {
			r.lks = map[string]string{}
		}
		r.lks[key] = t
	}
	return t, t != ""
}

// lstat looks at the path p (its folder has no symlinks: p is the entry's
// own path, the same whatever path led to it) once per resolver.
func (r *resolver) lstat(p string) entry {
	if e, ok := r.ents[p]; ok {
		return e
	}
	r.lstats++
	var e entry
	fi, err := os.Lstat(p)
	switch {
	case err != nil:
		e.err = true
	case fi.Mode()&os.ModeSymlink != 0:
		e.link = true
		if e.target, err = os.Readlink(p); err != nil {
			e.err = true
		}
	default:
		e.dir = fi.IsDir()
	}
	if r.ents == nil {
		r.ents = map[string]entry{}
	}
	r.ents[p] = e
	return e
}

// mountKey returns the key of the folder p when it is in the mount, or in
// another mount of its filesystem.
func (r *resolver) mountKey(p string) (string, bool) {
	if k, ok := under(p, r.mnt, ""); ok {
		return k, true
	}
	if !r.read {
		r.read = true
		r.aliases = mountAliases(r.mnt)
	}
	for mp, prefix := range r.aliases {
		if k, ok := under(p, mp, prefix); ok {
			return k, true
		}
	}
	return "", false
}

// under returns prefix joined with p's path below dir, if p is dir or
// below it.
func under(p, dir, prefix string) (string, bool) {
	if p == dir {
		return prefix, true
	}
	if rel, ok := strings.CutPrefix(p, dir+"/"); ok {
		return strings.TrimPrefix(path.Join(prefix, rel), "/"), true
	}
	return "", false
}

// mountDev returns the device and root of the filesystem mounted at mnt
// ("" if none is), and mnt as the kernel shows it, its symlinks resolved
// (its parent's only: never the mount's root).
func mountDev(ents []mountinfo.Mount, mnt string) (dev, root, real string) {
	real = mnt
	if dir, err := filepath.EvalSymlinks(filepath.Dir(mnt)); err == nil {
		real = filepath.Join(dir, filepath.Base(mnt))
	}
	// The last mount there is the one seen, but a lamina mount covered by
	// another (a tmpfs mounted over it) is still the one at mnt: its bind
	// mounts are aliases, and must never be looked at from its handlers.
	lamina := false
	for _, e := range ents {
		if e.Dir != real {
			continue
		}
		if l := strings.HasPrefix(e.Type, "fuse.lamina"); l || !lamina {
			dev, root, lamina = e.Dev, e.Root, l
		}
	}
	return dev, root, real
}

// mountAliases returns the other mount points of the filesystem mounted at
// mnt (bind mounts of it, or of one of its folders), each with the key of
// the folder it shows, from /proc/self/mountinfo.
func mountAliases(mnt string) map[string]string {
	ents := mountinfo.Read()
	dev, root, _ := mountDev(ents, mnt)
	if dev == "" {
		return nil
	}
	aliases := map[string]string{}
	for _, e := range ents {
		if e.Dev != dev || e.Dir == mnt {
			continue
		}
		if k, ok := under(e.Root, strings.TrimSuffix(root, "/"), ""); ok {
			aliases[strings.TrimSuffix(e.Dir, "/")] = k
		}
	}
	return aliases
}

// onMount tells whether the folder dir (a path as the kernel shows it:
// /proc/PID/cwd) is on the filesystem mounted at mnt: its longest mount
// point in /proc/self/mountinfo is mnt's or another mount of its
// filesystem (a bind mount). A folder of another mount nested in it
// (MNT/scratch a tmpfs, a second lamina mount at MNT/n/m2) is not, though
// its path is under mnt. Decided from the text only, no path looked at
// but mnt's parent; lexically when mountinfo does not show mnt.
func onMount(dir, mnt string) bool {
	mnt = strings.TrimSuffix(mnt, "/")
	lexical := dir == mnt || strings.HasPrefix(dir, mnt+"/")
	ents := mountinfo.Read()
	dev, _, _ := mountDev(ents, mnt)
	if dev == "" {
		return lexical
	}
	best, bestDev := -1, ""
	for _, e := range ents {
		p := strings.TrimSuffix(e.Dir, "/")
		if dir == e.Dir || dir == p || strings.HasPrefix(dir, p+"/") {
			if len(p) >= best { // the later of equals is on top
				best, bestDev = len(p), e.Dev
			}
		}
	}
	return bestDev == dev
}

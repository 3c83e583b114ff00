package lineage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// MaxSource is the largest source text a transform keeps.
const MaxSource = 1 << 20

// ParseParams turns k=v pairs into params. A value is typed only when
// its text is the canonical form of the typed value, so that nothing is
// lost on the way back: an integer that strconv.FormatInt writes the same
// (007, +7 and 123456789012345678901 stay strings) and that a JSON reader
// decoding numbers as float64 gets back (|i| ≤ 2^53), a float with a
// point that the shortest formatting writes the same (1.10, 1.0 and 1e3
// stay strings), true or
// false; anything else is kept verbatim as a string. A name given twice is
// an error.
func ParseParams(kvs []string) (map[string]any, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]any{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--param %q: write it as NAME=VALUE", kv)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("--param %s is given twice; give each name once", k)
		}
		out[k] = paramValue(v)
	}
	return out, nil
}

// paramValue types v when its canonical form round-trips exactly.
func paramValue(v string) any {
	if i, err := strconv.ParseInt(v, 10, 64); err == nil && strconv.FormatInt(i, 10) == v && i >= -(1<<53) && i <= 1<<53 {
		return i
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil && strconv.FormatFloat(f, 'f', -1, 64) == v && strings.Contains(v, ".") {
		return f
	}
	if v == "true" || v == "false" {
		return v == "true"
	}
	return v
}

var interpreters = map[string]bool{
	"python": true, "python3": true, "Rscript": true, "R": false, "bash": true, "sh": true, "perl": true,
	"julia": true, "node": true, "ruby": true,
}

// IsSnakemake reports whether argv runs Snakemake.
func IsSnakemake(argv []string) bool {
	for i, a := range argv {
		if i > 2 {
			break
		}
		if filepath.Base(a) == "snakemake" {
			return true
		}
		if a == "-m" && i+1 < len(argv) && argv[i+1] == "snakemake" {
			return true
		}
	}
	return false
}

// DetectTransform names what argv runs: name when given, else the script
// an interpreter runs (python3 qc.py), a script run directly (./qc.py, a
// file that starts with #!), or the program. Where a source file exists,
// its digest versions the transform and its text is kept (when it is text
// and at most MaxSource bytes). For Snakemake the source is the Snakefile.
func DetectTransform(argv []string, name, cwd string) catalog.Transform {
	t := catalog.Transform{Name: name, Kind: "named"}
	if len(argv) == 0 {
		return t
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(cwd, p)
	}
	var src string
	prog := filepath.Base(argv[0])
	switch {
	case IsSnakemake(argv):
		t.Kind = "pipeline"
		if name == "" {
			t.Name = "snakemake"
		}
		src = Snakefile(argv, cwd)
	case interpreters[strings.TrimRight(prog, "0123456789.")] && len(argv) > 1 && !strings.HasPrefix(argv[1], "-"):
		src = abs(argv[1])
		t.Kind = "script"
	default:
		if b, err := readHead(abs(argv[0])); err == nil && bytes.HasPrefix(b, []byte("#!")) && strings.Contains(argv[0], "/") {
			src = abs(argv[0])
			t.Kind = "script"
		} else {
			t.Kind = "program"
			if name == "" {
				t.Name = prog
			}
		}
	}
	if src != "" {
		if b, err := os.ReadFile(src); err == nil {
			t.Path = src
			t.Digest = ref.Sum(b)
			if len(b) <= MaxSource && utf8.Valid(b) {
				t.Source = string(b)
			}
		} else if t.Kind == "script" {
			t.Kind = "program"
		}
		if name == "" && t.Name == "" {
			t.Name = filepath.Base(src)
		}
	}
	if t.Name == "" {
		t.Name = prog
	}
	if name != "" && t.Kind == "program" {
		t.Kind = "named"
	}
	return t
}

func readHead(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, 2)
	n, err := f.Read(b)
	return b[:n], err
}

// envAllow is the environment a run records: where the software came
// from, never credentials.
var envAllow = []string{
	"CONDA_DEFAULT_ENV", "CONDA_PREFIX", "VIRTUAL_ENV", "PYTHONPATH", "R_LIBS_USER", "LANG", "SHELL",
	"SLURM_JOB_ID", "SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS", "SINGULARITY_NAME", "APPTAINER_NAME",
}

// EnvSummary returns the allow-listed variables of env ("K=V" pairs).
func EnvSummary(env []string) map[string]string {
	out := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		for _, a := range envAllow {
			if k == a {
				out[k] = v
			}
		}
	}
	return out
}

// Cgroup is a cgroup v2 of a run's own.
type Cgroup struct {
	Path string // in the cgroup tree, as /proc/PID/cgroup shows it
	Dir  string // where it is mounted
}

// cgroup2Root returns where the cgroup v2 tree is mounted.
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		for i, x := range fields {
			if x == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && fields[3] == "/" {
				return fields[4], nil
			}
		}
	}
	return "", errors.New("lineage: no cgroup v2 mount")
}

// CgroupRoot returns where the cgroup v2 tree is mounted, "" if nowhere.
func CgroupRoot() string {
	r, _ := cgroup2Root()
	return r
}

// ErrNoCgroups means this process can make no cgroup here at all: no
// cgroup v2, or a tree it may not write (mounted read-only, as in most
// containers, or not delegated to its user). It is how the machine is set
// up, not a failure worth a word on every run.
var ErrNoCgroups = errors.New("lineage: no writable cgroup v2 tree")

// NewCgroup makes a cgroup named name under this process's own, or takes
// an empty one of that name. It fails where the tree is not writable
// (ErrNoCgroups) or the cgroup cannot be made (a busy one of that name,
// limits); callers then rely on the parent chain.
func NewCgroup(name string) (*Cgroup, error) {
	root, err := cgroup2Root()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNoCgroups, strings.TrimPrefix(err.Error(), "lineage: "))
	}
	self := procCgroup(os.Getpid())
	if self == "" {
		return nil, fmt.Errorf("%w: not in a cgroup v2", ErrNoCgroups)
	}
	p := strings.TrimSuffix(self, "/") + "/" + name
	dir := filepath.Join(root, filepath.FromSlash(p))
	// One of that name left empty is taken: its Remove failed while a
	// process was still in it, and SweepCgroups keeps it while its pid
	// lives (the tracked shell), so failing would leave runs without one.
	if err := os.Mkdir(dir, 0o755); err != nil && (!errors.Is(err, fs.ErrExist) || cgroupBusy(p)) {
		if errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("%w: %w", ErrNoCgroups, err)
		}
		return nil, fmt.Errorf("lineage: cgroup: %w", err)
	}
	return &Cgroup{Path: p, Dir: dir}, nil
}

// cgroupProcs returns the processes in the cgroup at path (as
// /proc/PID/cgroup shows it), not those of the cgroups below it.
func cgroupProcs(path string) []int {
	root, err := cgroup2Root()
	if err != nil || path == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path), "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cgroupBusy reports whether a process is left in the cgroup at path (as
// /proc/PID/cgroup shows it) or in one below it; false for one that is gone.
func cgroupBusy(path string) bool {
	root, err := cgroup2Root()
	if err != nil || path == "" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(path), "cgroup.events"))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "populated "); ok {
			return strings.TrimSpace(v) == "1"
		}
	}
	return false
}

// inCgroup reports whether process pid is in the cgroup at path or one
// below it.
func inCgroup(pid int, path string) bool {
	cg := procCgroup(pid)
	return pid > 0 && cg != "" && (cg == path || strings.HasPrefix(cg, path+"/"))
}

// Move puts process pid into the cgroup.
func (c *Cgroup) Move(pid int) error {
	return os.WriteFile(filepath.Join(c.Dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
}

// Busy reports whether a process is left in the cgroup.
func (c *Cgroup) Busy() bool { return cgroupBusy(c.Path) }

// Remove removes the cgroup if no process is left in it.
func (c *Cgroup) Remove() error { return os.Remove(c.Dir) }

// SweepCgroups removes the cgroups of runs that are over under this
// process's own cgroup, where NewCgroup makes them: lamina-run-PID and
// lamina-track-PID whose process PID is gone and that no process is left
// in. A process that outlived its run (setsid nohup … &) or a `lamina
// run` killed with SIGKILL leaves its cgroup behind; one still busy
// stays, to be swept by a later call. Errors are ignored: sweeping is
// housekeeping.
func SweepCgroups() {
	root, err := cgroup2Root()
	if err != nil {
		return
	}
	if self := procCgroup(os.Getpid()); self != "" {
		sweepCgroups(filepath.Join(root, filepath.FromSlash(self)))
	}
}

func sweepCgroups(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), "lamina-run-")
		if !ok {
			rest, ok = strings.CutPrefix(e.Name(), "lamina-track-")
		}
		pid, err := strconv.Atoi(rest)
		if !ok || err != nil || !e.IsDir() {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		sweepCgroups(sub) // nested runs' first: a cgroup with children cannot go
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // its lamina run or shell lives (or the pid is reused: left for later)
		}
		os.Remove(sub) // rmdir of a cgroup fails while a process is in it
	}
}

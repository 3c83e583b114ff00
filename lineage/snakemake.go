package lineage

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// SnakemakeWorkdir returns the working directory of a Snakemake argv
// (-d/--directory), else cwd.
func SnakemakeWorkdir(argv []string, cwd string) string {
	if v, ok := snakemakeArg(argv, "-d", "--directory", len("--di")); ok {
		if !filepath.IsAbs(v) {
			v = filepath.Join(cwd, v)
		}
		return v
	}
	return cwd
}

// snakefileChoices are where Snakemake 7 looks for the Snakefile without
// -s, in order, relative to the directory it was started in (not
// --directory: it makes the path absolute before changing to that).
var snakefileChoices = []string{"Snakefile", "snakefile", "workflow/Snakefile", "workflow/snakefile"}

// Snakefile returns the Snakefile a Snakemake argv started in cwd runs:
// -s/--snakefile in any form argparse takes, else the first of
// Snakemake's default places that exists; "" when there is none.
func Snakefile(argv []string, cwd string) string {
	if v, ok := snakemakeArg(argv, "-s", "--snakefile", len("--sn")); ok {
		if !filepath.IsAbs(v) {
			v = filepath.Join(cwd, v)
		}
		return v
	}
	for _, c := range snakefileChoices {
		p := filepath.Join(cwd, filepath.FromSlash(c))
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

// snakemakeArg returns the value of the option short/long in argv as
// Snakemake's argparse reads it: "-s V", "-sV", "-s=V", "--snakefile V",
// "--snakefile=V", or the long name abbreviated to at least minLong
// characters ("--snake V"); the last one wins.
func snakemakeArg(argv []string, short, long string, minLong int) (string, bool) {
	v, found := "", false
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if a == "--" {
			break
		}
		var val string
		hasVal := false
		switch {
		case strings.HasPrefix(a, "--"):
			var name string
			name, val, hasVal = strings.Cut(a, "=")
			if len(name) < minLong || !strings.HasPrefix(long, name) {
				continue
			}
		case strings.HasPrefix(a, short):
			if len(a) > len(short) {
				val, hasVal = strings.TrimPrefix(a[len(short):], "="), true
			}
		default:
			continue
		}
		if !hasVal {
			if i+1 >= len(argv) {
				break
			}
			i++
			val = argv[i]
		}
		v, found = val, true
	}
	return v, found
}

// SnakemakeJob is one job as Snakemake's own records tell it.
type SnakemakeJob struct {
	Rule    string
	Inputs  []string // paths as the Snakefile gives them (relative to the workdir)
	Outputs []string
	Shell   string // the shell command, when the rule has one
	Failed  bool
	Done    bool // .snakemake/metadata records the job done
	// Started and Finished are the job's start and end as Snakemake
	// recorded them (metadata starttime, endtime: the mtimes of its
	// incomplete marker and of its output; the latest of its outputs');
	// for a failed job, both are the time of its log's error block.
	Started, Finished time.Time
	hash              string // metadata job_hash: one job's records share it
}

// SnakemakeJobs reads the jobs that ran since since from workdir's
// .snakemake/metadata (successful jobs: one record per output) and
// .snakemake/log (failed jobs: "Error in rule …" blocks).
func SnakemakeJobs(workdir string, since time.Time) []SnakemakeJob {
	byRule := map[string]*SnakemakeJob{} // rule + shell → job
	var order []string
	add := func(j SnakemakeJob) {
		// One job's records (one per output) share its job_hash; jobs of
		// a rule whose shell command is the same each time (script:, run:)
		// stay apart by it.
		k := j.Rule + "\x00" + j.Shell + "\x00" + j.hash
		if old := byRule[k]; old != nil {
			old.Outputs = append(old.Outputs, j.Outputs...)
			old.Failed = old.Failed || j.Failed
			old.Done = old.Done || j.Done
			if old.Started.IsZero() || !j.Started.IsZero() && j.Started.Before(old.Started) {
				old.Started = j.Started
			}
			if j.Finished.After(old.Finished) {
				old.Finished = j.Finished
			}
			return
		}
		byRule[k] = &j
		order = append(order, k)
	}
	meta := filepath.Join(workdir, ".snakemake", "metadata")
	// A long output's record is in "@" subfolders (snakemakeRecordOf).
	filepath.WalkDir(meta, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == meta {
			return nil
		}
		if e.IsDir() {
			if !strings.HasPrefix(e.Name(), "@") {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := e.Info()
		if err != nil || info.ModTime().Before(since.Add(-time.Second)) {
			return nil
		}
		rel, _ := filepath.Rel(meta, p)
		out, ok := recordName(filepath.ToSlash(rel))
		if !ok {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		var m struct {
			Rule       string      `json:"rule"`
			Input      []string    `json:"input"`
			Shellcmd   string      `json:"shellcmd"`
			Incomplete bool        `json:"incomplete"`
			Start      float64     `json:"starttime"`
			End        float64     `json:"endtime"`
			Hash       json.Number `json:"job_hash"`
		}
		if json.Unmarshal(b, &m) != nil || m.Rule == "" || m.Incomplete {
			return nil
		}
		add(SnakemakeJob{Rule: m.Rule, Inputs: m.Input, Outputs: []string{out}, Shell: m.Shellcmd, Done: true,
			Started: epoch(m.Start), Finished: epoch(m.End), hash: m.Hash.String()})
		return nil
	})
	logs, _ := filepath.Glob(filepath.Join(workdir, ".snakemake", "log", "*.snakemake.log"))
	for _, l := range logs {
		if info, err := os.Stat(l); err != nil || info.ModTime().Before(since) {
			continue
		}
		for _, j := range failedJobs(l) {
			add(j)
		}
	}
	out := make([]SnakemakeJob, 0, len(order))
	for _, k := range order {
		out = append(out, *byRule[k])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Rule < out[j].Rule })
	return out
}

// epoch is the time of Snakemake's seconds since the epoch; zero for 0.
func epoch(sec float64) time.Time {
	if sec <= 0 {
		return time.Time{}
	}
	whole := math.Floor(sec)
	return time.Unix(int64(whole), int64((sec-whole)*1e9)).UTC()
}

// SnakemakeBenchmarks returns, from workdir's .snakemake/log files
// written since since, each job's benchmark file mapped to the job's first
// output (paths as the Snakefile gives them): the "benchmark:" and
// "output:" lines of the log's "rule NAME:" blocks.
func SnakemakeBenchmarks(workdir string, since time.Time) map[string]string {
	out := map[string]string{}
	logs, _ := filepath.Glob(filepath.Join(workdir, ".snakemake", "log", "*.snakemake.log"))
	for _, l := range logs {
		if info, err := os.Stat(l); err != nil || info.ModTime().Before(since) {
			continue
		}
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		var output, bench string
		flush := func() {
			if output != "" && bench != "" {
				out[bench] = output
			}
			output, bench = "", ""
		}
		for _, line := range strings.Split(string(b), "\n") {
			t := strings.TrimSpace(line)
			switch {
			case !strings.HasPrefix(line, "    "):
				flush()
			case strings.HasPrefix(t, "output: "):
				output, _, _ = strings.Cut(strings.TrimPrefix(t, "output: "), ", ")
			case strings.HasPrefix(t, "benchmark: "):
				bench = strings.TrimPrefix(t, "benchmark: ")
			}
		}
		flush()
	}
	return out
}

// failedJobs parses the "Error in rule NAME:" blocks of a Snakemake log.
func failedJobs(path string) []SnakemakeJob {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []SnakemakeJob
	var cur *SnakemakeJob
	var at time.Time // the log's last "[Fri Nov 27 05:44:33 2026]" line
	inShell := false
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		line := s.Text()
		if d, ok := strings.CutPrefix(line, "["); ok && strings.HasSuffix(d, "]") {
			if t, err := time.ParseInLocation("Mon Jan _2 15:04:05 2006", strings.TrimSuffix(d, "]"), time.Local); err == nil {
				at = t
			}
		}
		if r, ok := strings.CutPrefix(line, "Error in rule "); ok {
			if cur != nil {
				out = append(out, *cur)
			}
			cur = &SnakemakeJob{Rule: strings.TrimSuffix(r, ":"), Failed: true, Started: at, Finished: at}
			inShell = false
			continue
		}
		if cur == nil {
			continue
		}
		t := strings.TrimSpace(line)
		switch {
		case !strings.HasPrefix(line, "    "):
			out = append(out, *cur)
			cur = nil
		case strings.HasPrefix(t, "input: "):
			cur.Inputs = strings.Split(strings.TrimPrefix(t, "input: "), ", ")
		case strings.HasPrefix(t, "output: "):
			cur.Outputs = strings.Split(strings.TrimPrefix(t, "output: "), ", ")
		case t == "shell:":
			inShell = true
		case inShell && !strings.HasPrefix(t, "(one of the commands"):
			if cur.Shell != "" {
				cur.Shell += "\n"
			}
			cur.Shell += t
			inShell = false
		}
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out
}

// MatchJob returns the job a child run was: the one whose shell command
// its argv carries, else the one that wrote one of its output keys (keyOf
// maps a Snakefile path to a key). ok is false when none fits.
func MatchJob(jobs []SnakemakeJob, argv []string, outputs []string, keyOf func(string) string) (SnakemakeJob, bool) {
	cmd := strings.Join(argv, " ")
	have := map[string]bool{}
	for _, k := range outputs {
		have[k] = true
	}
	wrote := func(j SnakemakeJob) bool {
		for _, o := range j.Outputs {
			if have[keyOf(o)] {
				return true
			}
		}
		return false
	}
	if rule := allowedRule(cmd); rule != "" {
		// A job Snakemake runs as a sub-Snakemake (shadow rules, say): of
		// the rule's jobs, the one whose outputs the run wrote.
		var first *SnakemakeJob
		for i, j := range jobs {
			if j.Rule == rule && wrote(j) {
				return j, true
			}
			if j.Rule == rule && first == nil {
				first = &jobs[i]
			}
		}
		if first != nil {
			return *first, true
		}
		return SnakemakeJob{Rule: rule}, true
	}
	// By shell command; of several jobs with the same one (a rule whose
	// command names no wildcard), the one whose outputs the run wrote.
	var byShell []SnakemakeJob
	for _, j := range jobs {
		if j.Shell != "" && strings.Contains(cmd, j.Shell) {
			byShell = append(byShell, j)
		}
	}
	for _, j := range byShell {
		if len(byShell) == 1 || wrote(j) {
			return j, true
		}
	}
	if len(byShell) > 0 {
		return byShell[0], true
	}
	for _, j := range jobs {
		if wrote(j) {
			return j, true
		}
	}
	return SnakemakeJob{}, false
}

// allowedRule returns the rule of "--allowed-rules 'NAME'" in a job's
// command line, "" if there is none.
func allowedRule(cmd string) string {
	_, rest, ok := strings.Cut(cmd, "--allowed-rules ")
	if !ok {
		return ""
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return ""
	}
	return strings.Trim(f[0], `'"`)
}

// snakemakeRecordOf returns the output a Snakemake 7 metadata record at
// the slash path p names (…/.snakemake/metadata/NAME, NAME the url-safe
// base64 of the output's path, split into "@"-prefixed folders when
// long): the output's path joined to the folder that holds .snakemake
// (Snakemake's working directory) when relative, as given when absolute.
// Not cleaned: "link/.." is the link's target's parent (outputKeys).
func snakemakeRecordOf(p string) (string, bool) {
	const meta = ".snakemake/metadata/"
	workdir, rec, ok := strings.Cut(p, meta)
	if !ok || (workdir != "" && !strings.HasSuffix(workdir, "/")) {
		return "", false
	}
	out, ok := recordName(rec)
	if !ok {
		return "", false
	}
	if strings.HasPrefix(out, "/") {
		return out, true
	}
	return workdir + out, true
}

// recordName returns the output path a record's slash path rel in
// .snakemake/metadata names, as the Snakefile gave it. Snakemake 7
// (persistence.py, _record_path) names a record the url-safe base64 of
// the path, cut into pieces of NAME_MAX-1 characters: each piece but the
// last a folder, prefixed "@" (not a base64 character).
func recordName(rel string) (string, bool) {
	parts := strings.Split(rel, "/")
	for i, s := range parts[:len(parts)-1] {
		var ok bool
		if parts[i], ok = strings.CutPrefix(s, "@"); !ok {
			return "", false
		}
	}
	name := strings.Join(parts, "")
	out, err := base64.URLEncoding.DecodeString(name)
	if err != nil {
		// The standard alphabet, which SnakemakeJobs always took too.
		if out, err = base64.StdEncoding.DecodeString(name); err != nil {
			return "", false
		}
	}
	if len(out) == 0 {
		return "", false
	}
	return string(out), true
}

// snakemakeScript matches the copy of a `script:` that Snakemake 7 writes
// under a new temporary name for each run of the job's script
// (.snakemake/scripts/tmpXXXXXXXX.NAME, Python's tempfile names).
var snakemakeScript = regexp.MustCompile(`(^|/)\.snakemake/scripts/tmp[a-z0-9_]{8}\.`)

// sameJobCommand reports whether the command lines a and b are the same
// job's: equal but for the temporary name of a `script:` copy.
func sameJobCommand(a, b []string) bool {
	return slices.EqualFunc(a, b, func(x, y string) bool {
		return x == y || snakemakeScript.ReplaceAllString(x, "${1}.snakemake/scripts/tmp.") == snakemakeScript.ReplaceAllString(y, "${1}.snakemake/scripts/tmp.")
	})
}

// scriptCopyArg matches the path of a `script:` copy in an argument of a
// job's command line (a bash -c text names it among other words).
var scriptCopyArg = regexp.MustCompile(`[^\s'"]*\.snakemake/scripts/tmp[a-z0-9_]{8}\.[^\s'"]+`)

// scriptCopy returns the path of the `script:` copy argv runs, as argv
// gives it; "" when it names none.
func scriptCopy(argv []string) string {
	for _, a := range argv {
		if m := scriptCopyArg.FindString(a); m != "" {
			return m
		}
	}
	return ""
}

// benchIteration matches the pass number in the preamble Snakemake 7
// writes at the head of a `script:` copy (script.py): Python's pickled
// Snakemake object ("bench_iteration" memoized, then None or a BININT1,
// BININT2 or BININT, as a bytes literal shows them), R's
// "bench_iteration = N" and Julia's "N, #bench_iteration".
var benchIteration = regexp.MustCompile(`bench_iteration(?:\\x94)?(?:N|K(?:\\x[0-9a-f]{2}|\\.|[^\\])|M(?:\\x[0-9a-f]{2}|\\.|[^\\]){2}|J(?:\\x[0-9a-f]{2}|\\.|[^\\]){4})|bench_iteration = (?:\d+|as\.numeric\(NA\))|(?:\d+|nothing), #bench_iteration`)

// scriptJob returns what a `script:` copy's bytes say of its job: their
// digest with the pass number left out. Snakemake writes a copy for each
// job and each of its passes (`benchmark: repeat`), under a new temporary
// name each time, its preamble naming the job's input, output, wildcards
// and pass: the passes of one job have the same, two jobs of one rule
// another (their command lines are the same but for the copy's name).
func scriptJob(b []byte) string {
	sum := sha256.Sum256(benchIteration.ReplaceAll(b, []byte("bench_iteration#")))
	return hex.EncodeToString(sum[:])
}

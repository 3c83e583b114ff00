package catalog

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lamina-bio/lamina/ref"
)

// Transform is what a run executes: a named step, a script or a program.
// Transforms are immutable; one name has a new transform each time its
// source digest changes (as LaminDB versions a transform by its code).
type Transform struct {
	UID       string     `json:"uid"`
	Name      string     `json:"name"`
	Kind      string     `json:"kind"`             // "script", "program", "pipeline", "rule" (a Snakemake rule; Digest is its Snakefile's) or "named"
	Path      string     `json:"path,omitempty"`   // the source file, as the run found it
	Digest    ref.Digest `json:"digest,omitempty"` // of the source; zero when there is none
	Source    string     `json:"source,omitempty"` // the source text (kept when small and text)
	CreatedAt time.Time  `json:"created_at"`
}

// Run statuses.
const (
	RunRunning = "running"
	RunOK      = "ok"
	RunFailed  = "failed"
	// RunAbandoned: the run's root process is gone and nobody finished the
	// run (a `lamina run` killed with SIGKILL, a tracked shell closed
	// without `track finish`); its exit status is unknown.
	RunAbandoned = "abandoned"
)

// Run is one execution of a transform.
type Run struct {
	UID       string         `json:"uid"`
	Transform string         `json:"transform"`      // transform uid
	Name      string         `json:"name,omitempty"` // the transform name, or a Snakemake rule
	Parent    string         `json:"parent,omitempty"`
	Params    map[string]any `json:"params,omitempty"` // numbers and booleans typed
	Argv      []string       `json:"argv,omitempty"`   // as text: bytes that are not UTF-8 become U+FFFD (SetArgv, Args)
	// Source is the path of the transform's source file as this run found
	// it. A transform is one for every run of the same name, kind and
	// source bytes, and its Path is the first such run's; RunRecord gives
	// the run's own (OwnSource).
	Source string `json:"source,omitempty"`
	// Redirects are the keys of the mount the caller of `lamina run` opened
	// to write for the command (`lamina run -- cmd > out`): the mount
	// daemon credits those open handles to the run (lineage.Tracker). Not
	// kept: the daemon takes them out before the run is stored.
	Redirects []string `json:"redirects,omitempty"`
	// ArgvRaw holds, by index in Argv, the arguments that are not valid
	// UTF-8, byte for byte (JSON writes them in base64): JSON text cannot
	// carry them.
	ArgvRaw    map[int][]byte    `json:"argv_raw,omitempty"`
	Cwd        string            `json:"cwd,omitempty"`
	User       string            `json:"user,omitempty"`
	Host       string            `json:"host,omitempty"`
	Env        map[string]string `json:"env,omitempty"` // an allow-listed summary, no secrets
	StartedAt  time.Time         `json:"started_at"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
	ExitCode   *int              `json:"exit_code,omitempty"`
	Signal     string            `json:"signal,omitempty"` // the signal that killed the command ("SIGINT"); ExitCode is then 128+its number
	Status     string            `json:"status"`           // RunRunning, RunOK, RunFailed or RunAbandoned
	// How a mount recognises the run's processes (lineage.Tracker): the
	// registered root process (pid and its start time in clock ticks since
	// boot, so that a reused pid never matches), its cgroup v2 path, and
	// whether each job under the command is a child run (Snakemake).
	RootPID   int    `json:"root_pid,omitempty"`
	RootStart uint64 `json:"root_start,omitempty"`
	Cgroup    string `json:"cgroup,omitempty"`
	Split     bool   `json:"split,omitempty"`
	// ProcsLeft: the run ended with processes of its command still in its
	// cgroup (`… &`, `setsid nohup`); until they exit, what they read and
	// write through a mount is the run's, recorded after its end.
	ProcsLeft bool `json:"processes_left,omitempty"`
	// Daemon names the mount daemon whose tracker made the run (a
	// Snakemake job's, which has no root process of its own and ends only
	// when that tracker ends it), or that registered its root process:
	// "BOOT_ID/PID/START" on Host, so that a later daemon of that host can
	// tell it is gone (lineage.Orphaned), and the other daemons that track
	// the run leave to it, while it lives, the judgment that the run was
	// abandoned (lineage.Tracker.Resume).
	Daemon string `json:"daemon,omitempty"`
	// HostID tells apart machines that share Host (containers with the
	// host's name and pid namespaces of their own, workstations named
	// alike): "BOOT_ID/PIDNS", PIDNS the inode of the pid namespace of
	// the process that recorded the run (lineage.HostID). Its pids and
	// Daemon mean something only where HostID is the same; a run
	// recorded before it was has "".
	HostID string `json:"host_id,omitempty"`
	// Job names a Snakemake job under Parent as every mount daemon that
	// sees it names it (lineage: the job's process id and command line).
	// StartRun of a run with Parent and Job set returns the run of Parent
	// started first with that Job, if there is one: two daemons that see
	// one job (the job reads through both mounts) make one run of it.
	Job string `json:"job,omitempty"`
	// Note says why a run was abandoned when its status alone does not
	// (a job run: the daemon that tracked it stopped); an amend that makes
	// it ok or failed drops it.
	Note string `json:"note,omitempty"`
	// Purged are the run's inputs and outputs deleted for good since
	// (Purge, PurgeTrashed), as they were: the record of the run still
	// says what it used and made (RunRecord lists their uids) and by
	// which names. Not a temporary the mount purged once it was renamed
	// onto a key (PurgeUnreferenced): its content, and the run, went to
	// the name. The stores keep it; StartRun ignores what a caller gives.
	Purged []PurgedVersion `json:"purged,omitempty"`
}

// PurgedVersion is a version a run used or made, deleted for good since
// (Run.Purged): what it was and when it went.
type PurgedVersion struct {
	UID     string `json:"uid"`
	Key     string `json:"key"`
	Version int    `json:"version"`
	// Output: the run made it, or wrote its bytes again (Reruns); else
	// the run used it (an input; a version may be both).
	Output bool `json:"output,omitempty"`
	Input  bool `json:"input,omitempty"`
	// Run is the run that made it (Version.Run): for an output, this run
	// or, for one it wrote again, another.
	Run      string    `json:"run,omitempty"`
	PurgedAt time.Time `json:"purged_at"`
}

// Ref is "KEY@vN", as Version.Ref.
func (p PurgedVersion) Ref() string { return Version{Key: p.Key, Version: p.Version}.Ref() }

// PurgedOutputs returns live, the uids of the run's outputs still in the
// catalog, with those of its outputs purged since (Purged), sorted: a
// store's RunRecord.Outputs.
func (r Run) PurgedOutputs(live []string) []string {
	out := append([]string{}, live...)
	n := len(out)
	for _, p := range r.Purged {
		if p.Output {
			out = append(out, p.UID)
		}
	}
	if len(out) == n {
		return out
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// PurgedByRun gives, for versions vs being purged, what each run that
// refers to them keeps of them (Run.Purged): a version's own run
// (Version.Run) and the runs that wrote its bytes again (reruns) made
// it; the runs that read it (users) used it. Runs are the map's keys;
// the store appends to those it holds, in its purging transaction.
func PurgedByRun(vs []Version, reruns, users func(uid string) ([]string, error), at time.Time) (map[string][]PurgedVersion, error) {
	out := map[string][]PurgedVersion{}
	at = at.UTC()
	for _, v := range vs {
		mark := map[string]*PurgedVersion{}
		var order []string
		get := func(run string) *PurgedVersion {
			if p, ok := mark[run]; ok {
				return p
			}
			mark[run] = &PurgedVersion{UID: v.UID, Key: v.Key, Version: v.Version, Run: v.Run, PurgedAt: at}
			order = append(order, run)
			return mark[run]
		}
		if v.Run != "" {
			get(v.Run).Output = true
		}
		again, err := reruns(v.UID)
		if err != nil {
			return nil, err
		}
		for _, r := range again {
			get(r).Output = true
		}
		used, err := users(v.UID)
		if err != nil {
			return nil, err
		}
		for _, r := range used {
			get(r).Input = true
		}
		for _, r := range order {
			out[r] = append(out[r], *mark[r])
		}
	}
	return out, nil
}

// SetArgv records argv: Argv as text, and each argument that is not
// valid UTF-8 also in ArgvRaw, so that Args gives argv back exactly.
func (r *Run) SetArgv(argv []string) {
	r.Argv, r.ArgvRaw = make([]string, len(argv)), nil
	for i, a := range argv {
		r.Argv[i] = a
		if !utf8.ValidString(a) {
			r.Argv[i] = strings.ToValidUTF8(a, "\uFFFD")
			if r.ArgvRaw == nil {
				r.ArgvRaw = map[int][]byte{}
			}
			r.ArgvRaw[i] = []byte(a)
		}
	}
}

// Args returns the run's argv exactly as it was given (see SetArgv).
func (r Run) Args() []string {
	if len(r.ArgvRaw) == 0 {
		return r.Argv
	}
	out := append([]string(nil), r.Argv...)
	for i, b := range r.ArgvRaw {
		if i >= 0 && i < len(out) {
			out[i] = string(b)
		}
	}
	return out
}

// JobRunUID is the uid of the run of job under parent (Run.Job): one
// uid whoever starts it, so that a second start finds the first.
func JobRunUID(parent, job string) string { return ref.StemOf("job", parent, job) }

// RunEnd finishes a run, or amends a finished one (a child run's name and
// status learnt at the end of its parent), or a running one (Daemon).
// Zero fields are left alone.
type RunEnd struct {
	// StartedAt, when set, corrects the start: a Snakemake job's run, which
	// the mount starts at the job's first open, takes the start Snakemake
	// recorded for the job.
	StartedAt  time.Time `json:"started_at,omitempty"`
	FinishedAt time.Time `json:"finished_at,omitempty"`
	ExitCode   *int      `json:"exit_code,omitempty"` // non-zero marks the run failed
	Signal     string    `json:"signal,omitempty"`    // the signal that killed the command
	Name       string    `json:"name,omitempty"`
	// Transform replaces the run's transform (a uid SaveTransform
	// returned): a Snakemake job's run gets its rule's.
	Transform string `json:"transform,omitempty"`
	// Abandoned marks a run whose root process vanished unfinished:
	// status RunAbandoned, no exit code.
	Abandoned bool `json:"abandoned,omitempty"`
	// ProcsLeft records that the run ended with processes left in its
	// cgroup (Run.ProcsLeft); false leaves it as it is.
	ProcsLeft bool `json:"processes_left,omitempty"`
	// Note replaces the run's note (Run.Note).
	Note string `json:"note,omitempty"`
	// Daemon replaces the daemon of a run still running (Run.Daemon): a
	// daemon that adopted it (lineage.Tracker.Resume) once the one it
	// recorded was gone claims it, so that the others leave its judgment
	// to it.
	Daemon string `json:"daemon,omitempty"`
}

// Apply applies e to r: what FinishRun does to the stored run, in every
// store. A run that ended is never abandoned afterwards: the first end
// wins for status, exit code, signal, end time and note, and only the
// rest of e (a name, a transform) amends it. Two daemons of one
// catalog may both watch a run's root process, and the one that sees it
// exit second knows nothing of how it ended. An end with an exit code
// still makes an abandoned run ok or failed, for any run: a daemon that
// saw the root exit may abandon it a moment before `lamina run` records
// the exit (and a Snakemake job's is amended from Snakemake's records).
func (r *Run) Apply(e RunEnd) {
	if e.Abandoned && r.Status != RunRunning && r.Status != "" {
		e.FinishedAt, e.ExitCode, e.Signal, e.Note, e.Abandoned = time.Time{}, nil, "", "", false
	}
	if !e.StartedAt.IsZero() {
		r.StartedAt = e.StartedAt.UTC()
	}
	if !e.FinishedAt.IsZero() {
		t := e.FinishedAt.UTC()
		r.FinishedAt = &t
	}
	if e.ExitCode != nil {
		c := *e.ExitCode
		r.ExitCode = &c
	}
	if e.Signal != "" {
		r.Signal = e.Signal
	}
	if e.Name != "" {
		r.Name = e.Name
	}
	if e.Transform != "" {
		r.Transform = e.Transform
	}
	if e.ProcsLeft {
		r.ProcsLeft = true
	}
	if e.Note != "" {
		r.Note = e.Note
	}
	if e.Daemon != "" && r.Status == RunRunning {
		r.Daemon = e.Daemon
	}
	switch {
	case e.Abandoned:
		r.Status, r.ExitCode = RunAbandoned, nil
	case r.ExitCode != nil && *r.ExitCode != 0:
		r.Status = RunFailed
	case r.Status == RunAbandoned && e.ExitCode == nil: // a later amend (a name) keeps it
	case r.FinishedAt != nil || r.ExitCode != nil:
		r.Status = RunOK
	}
	if r.Status != RunAbandoned && e.Note == "" {
		r.Note = "" // it said why the run was abandoned; it was amended since
	}
}

// RunRecord is a run with everything recorded about it.
type RunRecord struct {
	Run       Run       `json:"run"`
	Transform Transform `json:"transform"`
	// Inputs are the version uids the run used, by key, then version
	// number (uids of versions purged since last, by uid; Run.Purged says
	// what they were).
	Inputs []string `json:"inputs"`
	// Outputs are the version uids whose Run is this run, and those whose
	// bytes it wrote again unchanged (Reruns), sorted; those deleted for
	// good since too (Run.Purged says what they were).
	Outputs  []string `json:"outputs"`
	Children []string `json:"children"` // child run uids, oldest first
}

// OwnSource makes rec's transform name the source file by the path its
// run found it by (Run.Source), not the first run's: the same script run
// from another folder is the same transform, and a run of the copy in the
// mount took the copy for an input of its own (the tracker compares the
// files it reads with the source by path).
func (rec *RunRecord) OwnSource() {
	if rec.Run.Source != "" && !rec.Transform.Digest.IsZero() {
		rec.Transform.Path = rec.Run.Source
	}
}

// RunQuery selects runs, newest first.
type RunQuery struct {
	Transform string // transform name; "" for all
	Parent    string // only the children of this run
	Status    string // only runs of this status; "" for all
	RootPID   int    // only runs whose root process has this pid; 0 for all
	// PurgedKey: only runs that used or made a version of this key
	// deleted for good since (Run.Purged); "" for all. A daemon of an
	// earlier build ignores it: callers check Purged themselves.
	PurgedKey string
	Limit     int // 0 means no limit
}

// PurgedOf returns what r records of key's versions deleted for good
// (Run.Purged).
func (r Run) PurgedOf(key string) []PurgedVersion {
	var out []PurgedVersion
	for _, p := range r.Purged {
		if p.Key == key {
			out = append(out, p)
		}
	}
	return out
}

// Runs keeps transforms, runs and their inputs; outputs are the versions
// saved with NewVersion.Run set. Each call is one transaction; methods are
// safe for concurrent use.
type Runs interface {
	// SaveTransform records t unless a transform with the same name, kind
	// and digest exists, and returns the stored one (with its uid).
	SaveTransform(ctx context.Context, t Transform) (Transform, error)
	// StartRun records r with a new uid (r.UID is ignored), status
	// RunRunning. A run with Parent and Job set has the uid JobRunUID
	// gives, and when a run of that uid exists StartRun returns it as it
	// is. Errors: ErrNotFound when r.Transform or r.Parent names nothing.
	StartRun(ctx context.Context, r Run) (Run, error)
	// FinishRun sets the end of a run (see RunEnd and Run.Apply) and
	// returns it; status becomes RunOK or RunFailed by the exit code, or
	// RunAbandoned. ErrNotFound for an unknown uid or e.Transform.
	FinishRun(ctx context.Context, uid string, e RunEnd) (Run, error)
	// AddInputs records that run used the versions uids. Repeats are no-ops;
	// the caller leaves out versions the run or its children wrote
	// (Version.Run), and those they wrote again before the read (Reruns:
	// a read before the run's rewrite is an input; only the caller knows
	// which came first).
	// ErrNotFound for an unknown run.
	AddInputs(ctx context.Context, run string, uids []string) error
	// CreditOutputs makes the versions uids outputs of run (their
	// Version.Run), taking them from the run that wrote them: a workflow
	// engine's own write of a job's declared output (Snakemake's touch()),
	// credited to the job's run once the engine's records tell which job
	// it was. It returns the versions as they are now. ErrNotFound for an
	// unknown run or version.
	CreditOutputs(ctx context.Context, run string, uids []string) ([]Version, error)
	// RunRecord returns a run by full uid or unique prefix (at least
	// ref.MinUIDPrefix characters), with its transform, inputs, outputs and
	// children. ErrNotFound when none matches.
	RunRecord(ctx context.Context, uid string) (RunRecord, error)
	// ListRuns returns runs, newest first.
	ListRuns(ctx context.Context, q RunQuery) ([]Run, error)
	// UsedBy returns the uids of the runs that used version uid, sorted.
	UsedBy(ctx context.Context, uid string) ([]string, error)
	// Reruns returns the uids of the runs, other than the one that made
	// version uid (its Run), that wrote its bytes again under its key
	// while it was the latest: identical content makes no new version, so
	// Save records such a run here and among the run's outputs
	// (RunRecord). Oldest run first (by start time, then uid; runs not
	// recorded in this catalog last); empty for an unknown uid.
	Reruns(ctx context.Context, uid string) ([]string, error)
}

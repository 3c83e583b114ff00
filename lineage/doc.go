// Package lineage records which runs read and wrote which versions, and
// answers where a version came from and where it went.
//
// Concepts:
//
//   - A transform is what runs: a named step, a script (versioned by the
//     digest of its source, whose text is kept) or a program.
//   - A run is one execution: params, argv, cwd, user, host, times, exit
//     status, an allow-listed environment summary and a parent run.
//   - Inputs are the versions a run's processes opened for reading through
//     the mount (bound at open: the latest, or key@vN); outputs are the
//     versions their writes committed (catalog.Version.Run).
//
// The Tracker (tracker.go) lives in the mount daemon and attributes file
// system calls to runs by the caller's process: its cgroup v2, else its
// parent chain up to a registered root (pid plus start time), else its
// LAMINA_RUN environment marker read under a short deadline. Graph
// (graph.go) walks the records up and down; export.go writes the graph as
// text, Graphviz DOT, Mermaid, JSON, W3C PROV-JSON or a self-contained
// HTML page. docs/lineage.md has the decisions and measurements.
package lineage

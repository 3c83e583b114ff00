// Command lamina is the Lamina CLI: instances, artifacts, and (in later
// commands) the mount, runs and ontologies. It is the only package that
// builds concrete catalogs and storage backends.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

func main() {
	if p := os.Getenv("LAMINA_CPUPROFILE"); p != "" {
		// For measuring: `LAMINA_CPUPROFILE=cpu.out lamina save …`.
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	err := run()
	if p := os.Getenv("LAMINA_MEMPROFILE"); p != "" {
		// For measuring: the live heap as the command (a foreground
		// mount: at its unmount) ends, `go tool pprof -inuse_space`.
		if f, ferr := os.Create(p); ferr == nil {
			runtime.GC()
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	if err != nil {
		pprof.StopCPUProfile()
		os.Exit(exitCode(err))
	}
}

func run() error {
	err := Main(os.Args, os.Stdout, os.Stderr)
	if err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			if msg := err.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "lamina:", msg)
			}
		} else {
			fmt.Fprintln(os.Stderr, "lamina:", explain(err))
		}
	}
	return err
}

func exitCode(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	return 1
}

// commands are lamina's commands, in the order help lists them.
func commands() []*cli.Command {
	return []*cli.Command{
		cmdInit(), cmdInfo(), cmdInstances(), cmdUse(),
		cmdConnect(), cmdExportCatalog(), cmdImportCatalog(), // issue 9: connect.go, exportcatalog.go
		cmdSave(), cmdLs(), cmdShow(), cmdGet(),
		cmdDelete(), cmdRestore(), cmdGC(),
		cmdMount(), cmdUmount(), cmdStatus(), cmdCache(), cmdScratch(),
		cmdOntology(),
		cmdRun(), cmdRuns(), cmdLineage(), cmdTrack(), // issue 5: run.go, runs.go, lineage.go, track.go
		cmdFeature(), cmdLabel(), cmdSchema(), cmdAnnotate(), cmdCurate(), cmdSearch(), cmdCollection(), // issue 7
	}
}

// Main runs the CLI with args (args[0] is the program name).
func Main(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := &cli.App{
		Name:    "lamina",
		Usage:   "versioned, traceable, findable biological data behind plain file paths",
		Version: version,
		// Set, so urfave/cli does not stat os.Args[0] for it: run through
		// PATH in a mount, that is a lookup of "lamina" in the current
		// folder, which hangs with a stopped daemon.
		Compiled: time.Unix(1, 0),
		Writer:   stdout, ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "instance", Usage: "instance to use instead of the current one", EnvVars: []string{"LAMINA_INSTANCE"}},
		},
		Commands:             commands(),
		HideHelpCommand:      true,
		EnableBashCompletion: true,
		// Repeatable flags keep each value whole: --param genes=CD4,CD8
		// is one parameter (the others are multiFlag, query.go).
		DisableSliceFlagSeparator: true,
		ExitErrHandler:            func(*cli.Context, error) {}, // main prints errors once
		OnUsageError:              usageExit,
		Action:                    unknownCommand,
	}
	onUsageError(app.Commands)
	if len(args) > 1 {
		args = append(args[:1:1], interspersed(app.Commands, hoistInstance(args[1:]))...)
	}
	return withExitCode(app.RunContext(ctx, args))
}

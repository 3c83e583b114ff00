package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// examples is the "Examples:" block that ends a command's Description:
// commands that work as written (TestHelpExamples checks their flags),
// one a line.
func examples(lines ...string) string {
	return "Examples:\n  " + strings.Join(lines, "\n  ")
}

// descriptionFlag is --description (-d, as save's) of a command that
// records what, e.g. "the feature".
func descriptionFlag(what string) *cli.StringFlag {
	return &cli.StringFlag{Name: "description", Aliases: []string{"d"}, Usage: "description of " + what}
}

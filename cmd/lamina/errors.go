package main

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/lamina-bio/lamina/catalog"
)

// explain turns an error into the message a person reads: what went wrong
// and, where we know it, what to do.
func explain(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return msg + "\nThe disk is full. Nothing was recorded in the catalog; free some space and save again (`lamina gc` removes unreferenced data)."
	case errors.Is(err, syscall.EDQUOT):
		return msg + "\nThe disk quota is exceeded. Nothing was recorded in the catalog."
	case errors.Is(err, catalog.ErrSchema):
		return msg
	}
	return msg
}

// exitf returns an error that exits with code without a usage dump.
func exitf(code int, format string, a ...any) error {
	return exitError{msg: fmt.Sprintf(format, a...), code: code}
}

type exitError struct {
	msg  string
	code int
}

func (e exitError) Error() string { return e.msg }
func (e exitError) ExitCode() int { return e.code }

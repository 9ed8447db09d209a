// Package exitcode carries a process exit code inside an error chain, so the steps of a
// run classify their failures where they happen and main only maps the chain to a code.
package exitcode

import (
	"errors"
	"fmt"
)

// Error is an error with the exit code the process ends with.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Wrap classifies err with code; a nil err stays nil. An error already classified keeps
// its first (innermost) code.
func Wrap(code int, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Code: code, Err: err}
}

// Wrapf classifies a new error.
func Wrapf(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Of returns the code of err: 0 for nil, fallback for an unclassified error.
func Of(err error, fallback int) int {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return fallback
}

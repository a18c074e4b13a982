package api

import (
	"errors"
	"strings"

	"github.com/gpufleet/gpufleet/internal/spec"
)

// JobSpec is a submitted job: what the core schedules and what runs.
type JobSpec = spec.JobSpec

// DecodeJob reads a job document (YAML, or JSON, which is YAML too); name
// labels the document in error messages. Beyond the spec's own checks the
// live plane needs a command to run.
func DecodeJob(name string, data []byte) (JobSpec, *Error) {
	js, err := spec.ParseJob(name, data)
	if err != nil {
		return JobSpec{}, specError(err)
	}
	if len(js.Run.Command) == 0 || js.Run.Command[0] == "" {
		return JobSpec{}, Invalid("command", "%s: command: missing: the live plane runs it for every replica", name)
	}
	for k := range js.Run.Env {
		if strings.ContainsAny(k, "=\x00") {
			return JobSpec{}, Invalid("env", "%s: env: variable name %q must not hold '=' or NUL", name, k)
		}
	}
	return js, nil
}

// specError keeps the field path of the spec's first error; the message
// holds all of them, one per line.
func specError(err error) *Error {
	e := Invalid("", "%s", err.Error())
	var list spec.Errors
	var one *spec.Error
	switch {
	case errors.As(err, &list) && len(list) > 0:
		e.Field = list[0].Path
	case errors.As(err, &one):
		e.Field = one.Path
	}
	return e
}

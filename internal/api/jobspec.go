package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// JobSpec is a submitted job: what the core schedules and what runs.
type JobSpec = spec.JobSpec

// Job document syntaxes.
const (
	FormatYAML = "yaml"
	FormatJSON = "json"
)

// JobMediaTypes are the Content-Types POST /v1/jobs takes, with the syntax
// each announces.
var JobMediaTypes = map[string]string{
	"application/yaml": FormatYAML, "application/x-yaml": FormatYAML, "text/yaml": FormatYAML, "text/x-yaml": FormatYAML,
	"application/json": FormatJSON,
}

// DecodeJob reads a job document, YAML or JSON, telling which from its
// first character; name labels the document in error messages.
func DecodeJob(name string, data []byte) (JobSpec, *Error) { return DecodeJobAs(name, data, "") }

// DecodeJobAs reads a job document of a known syntax (FormatYAML or
// FormatJSON; "" tells from the first character: a JSON document is an
// object). JSON is YAML too, so the spec's parser reads both and names the
// field, line and column of a problem; a JSON document is first checked as
// JSON, so that its syntax errors are told in JSON's terms. Beyond the
// spec's own checks the live plane needs a command to run.
func DecodeJobAs(name string, data []byte, format string) (JobSpec, *Error) {
	sniffed := format == ""
	if sniffed {
		format = FormatYAML
		if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
			format = FormatJSON
		}
	}
	var jsonErr *Error
	if format == FormatJSON {
		jsonErr = checkJSONSyntax(name, data)
		if jsonErr != nil && !sniffed {
			return JobSpec{}, jsonErr
		}
	}
	js, err := spec.ParseJob(name, data)
	if err != nil {
		if jsonErr != nil && isSyntaxError(err) {
			// It looked like JSON and is neither JSON nor YAML: JSON's
			// account of the problem is the one its author can use.
			return JobSpec{}, jsonErr
		}
		return JobSpec{}, specError(err)
	}
	if len(js.Run.Command) == 0 || js.Run.Command[0] == "" {
		return JobSpec{}, Invalid("command", "%s: command: missing: the live plane runs it for every replica", name)
	}
	if js.Job.Kind == sched.Service && js.Service == nil {
		return JobSpec{}, Invalid("service", "%s: service: missing: the live plane runs a kind: service job as an autoscaled service and needs its service: section (replica, maxReplicas, target; see docs/SERVICES.md)", name)
	}
	for k := range js.Run.Env {
		if strings.ContainsAny(k, "=\x00") {
			return JobSpec{}, Invalid("env", "%s: env: variable name %q must not hold '=' or NUL", name, k)
		}
	}
	return js, nil
}

// checkJSONSyntax refuses a document that is not one JSON object, naming
// the line and column of the fault.
func checkJSONSyntax(name string, data []byte) *Error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	err := dec.Decode(&raw)
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		line, col := lineCol(data, se.Offset-1) // Offset is just past the offending byte
		return Invalid("", "%s:%d:%d: JSON syntax: %v", name, line, col, err)
	case err == io.EOF:
		return Invalid("", "%s: JSON syntax: the document is empty; want a JSON object", name)
	case errors.Is(err, io.ErrUnexpectedEOF):
		line, col := lineCol(data, int64(len(data)))
		return Invalid("", "%s:%d:%d: JSON syntax: the document ends inside a value", name, line, col)
	case err != nil:
		return Invalid("", "%s: JSON syntax: %v", name, err)
	case len(raw) == 0 || raw[0] != '{':
		return Invalid("", "%s:1:1: JSON syntax: a job is a JSON object, not %s", name, jsonKind(raw))
	}
	if dec.More() {
		line, col := lineCol(data, dec.InputOffset())
		return Invalid("", "%s:%d:%d: JSON syntax: more data after the job's object", name, line, col)
	}
	return nil
}

func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// lineCol turns a byte offset into a 1-based line and column; the column
// counts bytes, as the JSON decoder's offsets do.
func lineCol(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	line = 1 + bytes.Count(data[:off], []byte("\n"))
	col = int(off) - bytes.LastIndexByte(data[:off], '\n')
	if col < 1 {
		col = 1
	}
	return line, col
}

// isSyntaxError reports whether the spec refused the document as YAML
// before reading any field.
func isSyntaxError(err error) bool {
	var list spec.Errors
	if !errors.As(err, &list) || len(list) == 0 {
		return false
	}
	for _, e := range list {
		if !strings.HasPrefix(e.Msg, "YAML syntax") {
			return false
		}
	}
	return true
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

// Package jobdoc reads a job document sent to the API: YAML or JSON, told
// apart by its Content-Type or its first character, with JSON's own account
// of its syntax errors. It is apart from package api so that the wire types
// (which the node agent links) do not link the job spec and the scheduling
// core it names.
package jobdoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// Decode reads a job document, YAML or JSON, telling which from its
// first character; name labels the document in error messages.
func Decode(name string, data []byte) (spec.JobSpec, *api.Error) { return DecodeAs(name, data, "") }

// DecodeAs reads a job document of a known syntax (api.FormatYAML or
// api.FormatJSON; "" tells from the first character: a JSON document is an
// object). JSON is YAML too, so the spec's parser reads both and names the
// field, line and column of a problem; a JSON document is first checked as
// JSON, so that its syntax errors are told in JSON's terms. Beyond the
// spec's own checks the live plane needs a command to run.
func DecodeAs(name string, data []byte, format string) (spec.JobSpec, *api.Error) {
	sniffed := format == ""
	if sniffed {
		format = api.FormatYAML
		if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
			format = api.FormatJSON
		}
	}
	var jsonErr *api.Error
	if format == api.FormatJSON {
		jsonErr = checkJSONSyntax(name, data)
		if jsonErr != nil && !sniffed {
			return spec.JobSpec{}, jsonErr
		}
	}
	js, err := spec.ParseJob(name, data)
	if err != nil {
		if jsonErr != nil && isSyntaxError(err) {
			// It looked like JSON and is neither JSON nor YAML: JSON's
			// account of the problem is the one its author can use.
			return spec.JobSpec{}, jsonErr
		}
		return spec.JobSpec{}, specError(err)
	}
	if len(js.Run.Command) == 0 || js.Run.Command[0] == "" {
		return spec.JobSpec{}, api.Invalid("command", "%s: command: missing: the live plane runs it for every replica", name)
	}
	if js.Job.Kind == sched.Service && js.Service == nil {
		return spec.JobSpec{}, api.Invalid("service", "%s: service: missing: the live plane runs a kind: service job as an autoscaled service and needs its service: section (replica, maxReplicas, target; see docs/SERVICES.md)", name)
	}
	for k := range js.Run.Env {
		if strings.ContainsAny(k, "=\x00") {
			return spec.JobSpec{}, api.Invalid("env", "%s: env: variable name %q must not hold '=' or NUL", name, k)
		}
	}
	return js, nil
}

// checkJSONSyntax refuses a document that is not one JSON object, naming
// the line and column of the fault.
func checkJSONSyntax(name string, data []byte) *api.Error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	err := dec.Decode(&raw)
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		line, col := lineCol(data, se.Offset-1) // Offset is just past the offending byte
		return api.Invalid("", "%s:%d:%d: JSON syntax: %v", name, line, col, err)
	case err == io.EOF:
		return api.Invalid("", "%s: JSON syntax: the document is empty; want a JSON object", name)
	case errors.Is(err, io.ErrUnexpectedEOF):
		line, col := lineCol(data, int64(len(data)))
		return api.Invalid("", "%s:%d:%d: JSON syntax: the document ends inside a value", name, line, col)
	case err != nil:
		return api.Invalid("", "%s: JSON syntax: %v", name, err)
	case len(raw) == 0 || raw[0] != '{':
		return api.Invalid("", "%s:1:1: JSON syntax: a job is a JSON object, not %s", name, jsonKind(raw))
	}
	if dec.More() {
		line, col := lineCol(data, dec.InputOffset())
		return api.Invalid("", "%s:%d:%d: JSON syntax: more data after the job's object", name, line, col)
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
func specError(err error) *api.Error {
	e := api.Invalid("", "%s", err.Error())
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

package sim

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
)

// The functions here find where in a line a problem lies, so that errors
// name a column. They run only once a line is known to be bad.

// skipSpace returns the offset of the first byte at or after off that is
// not JSON whitespace or a separator.
func skipSpace(line []byte, off int) int {
	for off < len(line) {
		switch line[off] {
		case ' ', '\t', '\r', '\n', ',', ':':
			off++
		default:
			return off
		}
	}
	return off
}

// token is one JSON token of a line with its byte span.
type token struct {
	tok        json.Token
	start, end int
}

// tokens calls f for each token of line until f returns false or the line
// ends or is malformed.
func tokens(line []byte, f func(t token) bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	prev := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		end := int(dec.InputOffset())
		if !f(token{tok: tok, start: skipSpace(line, prev), end: end}) {
			return
		}
		prev = end
	}
}

// tokenStart returns the start of the last token that begins before off.
func tokenStart(line []byte, off int) int {
	start := 0
	tokens(line, func(t token) bool {
		if t.start >= off {
			return false
		}
		start = t.start
		return true
	})
	return start
}

// frame is one open object or array while walking a line.
type frame struct {
	object  bool
	typ     reflect.Type // the Go type the container decodes into; nil if unknown
	wantKey bool
	key     string
	index   int
}

// walk visits the keys and values of line with their paths and the Go type
// (from record) they decode into. onKey sees every object key; onValue
// every value start. Either returns false to stop.
func walk(line []byte, onKey func(path []any, parent reflect.Type, key string, start int) bool, onValue func(path []any, start int) bool) {
	var stack []frame
	path := func() []any {
		var p []any
		for _, f := range stack {
			if f.object {
				p = append(p, f.key)
			} else {
				p = append(p, f.index)
			}
		}
		return p
	}
	root := reflect.TypeOf(record{})
	tokens(line, func(t token) bool {
		if d, ok := t.tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].wantKey = true
			}
			return true
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
			key, _ := t.tok.(string)
			top := &stack[n-1]
			top.key, top.wantKey = key, false
			return onKey == nil || onKey(path(), top.typ, key, t.start)
		}
		// A value: the container's element type gives its Go type.
		var typ reflect.Type
		if n := len(stack); n == 0 {
			typ = root
		} else {
			top := &stack[n-1]
			if !top.object {
				top.index++
			}
			typ = childType(top.typ, top.key)
		}
		if onValue != nil && len(stack) > 0 && !onValue(path(), t.start) {
			return false
		}
		if d, ok := t.tok.(json.Delim); ok {
			stack = append(stack, frame{object: d == '{', typ: deref(typ), wantKey: d == '{', index: -1})
			return true
		}
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantKey = true
		}
		return true
	})
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// childType is the type a container of type t decodes key (or, for
// arrays and maps, any element) into; nil when unknown.
func childType(t reflect.Type, key string) reflect.Type {
	switch {
	case t == nil:
		return nil
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map:
		return deref(t.Elem())
	case t.Kind() == reflect.Struct:
		if f, ok := jsonField(t, key); ok {
			return deref(f.Type)
		}
	}
	return nil
}

// jsonField finds the field that encoding/json decodes key into (it
// matches names without regard to case).
func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" {
				continue
			}
			if n != "" {
				name = n
			}
		}
		if strings.EqualFold(name, key) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// locateUnknown finds the first object key that the line's types do not
// know.
func locateUnknown(line []byte) (off int, key string, ok bool) {
	walk(line, func(_ []any, parent reflect.Type, k string, start int) bool {
		if parent == nil || parent.Kind() != reflect.Struct {
			return true
		}
		if _, known := jsonField(parent, k); known {
			return true
		}
		off, key, ok = start, k, true
		return false
	}, nil)
	return off, key, ok
}

// locatePath finds the key (or array element) that path names.
func locatePath(line []byte, want []any) (off int, ok bool) {
	match := func(p []any) bool {
		if len(p) != len(want) {
			return false
		}
		for i := range p {
			switch w := want[i].(type) {
			case string:
				k, isKey := p[i].(string)
				if !isKey || !strings.EqualFold(k, w) {
					return false
				}
			case int:
				if idx, isIdx := p[i].(int); !isIdx || idx != w {
					return false
				}
			}
		}
		return true
	}
	found := func(p []any, start int) bool {
		if match(p) {
			off, ok = start, true
			return false
		}
		return true
	}
	walk(line, func(p []any, _ reflect.Type, _ string, start int) bool { return found(p, start) },
		func(p []any, start int) bool {
			if _, isIdx := p[len(p)-1].(int); isIdx {
				return found(p, start)
			}
			return true
		})
	return off, ok
}

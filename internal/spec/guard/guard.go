// Package guard is the check every document gpufleet reads passes before
// it is parsed, and the positioned errors its readers report. It links no
// reader of specs, so a program that only checks documents (the node
// agent) does not link the scheduling core.
package guard

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/token"
)

// Every document gpufleet reads, YAML or JSON, from a file or a request,
// passes one guard before it is parsed: a bound on its size, on how deeply
// its mappings and lists nest, and on its text being UTF-8 without control
// characters. The YAML parser's memory grows with the square of a
// document's nesting (a 100 KB request nested 50,000 deep took it past
// 2.5 GB in 4 s); its lexer's grows with the text alone, so the depth of a
// YAML document is measured on the lexer's tokens, which the parser then
// takes as they are. JSON request bodies are measured by a byte scan, which
// JSON's unambiguous strings allow.

// Limits on documents.
const (
	// MaxDepth bounds how deeply a document's mappings and lists nest. The
	// deepest document gpufleet has a use for, a queue tree 16 levels below
	// its tenant written in block style, nests about 50 deep.
	MaxDepth = 64
	// MaxJobBytes bounds a job file and a job request: a file of many jobs
	// is submitted one request per job, each far smaller.
	MaxJobBytes = 1 << 20
	// MaxFileBytes bounds any other spec file (fleets, queue trees).
	MaxFileBytes = 16 << 20
)

// SizeError is a document over its size limit.
type SizeError struct {
	Name  string
	Size  int64 // the size, or -1 when only "more than the limit" is known
	Limit int64
}

func (e *SizeError) Error() string { return e.Name + ": " + e.Detail() }

// Detail is the message without the document's name.
func (e *SizeError) Detail() string {
	size := fmt.Sprintf("is %s", FormatBytes(e.Size))
	if e.Size < 0 {
		size = "is larger than that"
	}
	return fmt.Sprintf("%s; gpufleet reads at most %s here", size, FormatBytes(e.Limit))
}

// FormatBytes renders a size in the largest binary unit that keeps it
// exact to a tenth: 1 MiB, 16 MiB, 1.5 KiB, 300 bytes.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift {
			v := float64(n) / float64(int64(1)<<u.shift)
			if v == float64(int64(v)) {
				return fmt.Sprintf("%d %s (%d bytes)", int64(v), u.name, n)
			}
			return fmt.Sprintf("%.1f %s (%d bytes)", v, u.name, n)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// CheckText refuses text YAML cannot hold: bytes that are not UTF-8 (the
// lexer would silently replace them) and control characters other than
// tab, newline and carriage return. It reports the first one's line and
// column.
func CheckText(name string, data []byte) *Error {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			return &Error{File: name, Line: line, Column: col, Msg: fmt.Sprintf("byte %#02x is not UTF-8: documents are UTF-8 text", data[i])}
		case r == '\n':
			line, col = line+1, 0
		case r < 0x20 && r != '\t' && r != '\r', r == 0x7f:
			return &Error{File: name, Line: line, Column: col, Msg: fmt.Sprintf("control character %U is not allowed in a document (write it as an escape in a double-quoted string)", r)}
		}
		i += n
		col++
	}
	return nil
}

// TooDeep returns the first token at which the document's nesting passes
// max, or nil. Flow collections count by their brackets; block collections
// by the columns at which their entries stand: a sequence entry, an
// explicit key, or a key followed by ':' opens a level at its column unless
// one is open there already. A block sequence written at its parent key's
// column shares that key's level, so the count can be as low as half the
// true depth, never lower: the bound holds within a factor of two, which
// is what the parser's memory needs.
func TooDeep(tokens token.Tokens, max int) *token.Token {
	var blocks []int // columns of the open block levels, increasing
	flow := 0
	open := func(col int) {
		for len(blocks) > 0 && blocks[len(blocks)-1] > col {
			blocks = blocks[:len(blocks)-1]
		}
		if len(blocks) == 0 || blocks[len(blocks)-1] < col {
			blocks = append(blocks, col)
		}
	}
	for i, tk := range tokens {
		switch tk.Type {
		case token.DocumentHeaderType, token.DocumentEndType:
			blocks, flow = blocks[:0], 0
		case token.SequenceStartType, token.MappingStartType:
			flow++
		case token.SequenceEndType, token.MappingEndType:
			if flow > 0 {
				flow--
			}
		case token.SequenceEntryType, token.MappingKeyType:
			if flow == 0 {
				open(tk.Position.Column)
			}
		case token.MappingValueType:
			if flow > 0 {
				break
			}
			// The level is the key's: the token before the ':' on its
			// line, or the ':' itself when it starts the line.
			col := tk.Position.Column
			if i > 0 && tokens[i-1].Position != nil && tokens[i-1].Position.Line == tk.Position.Line {
				col = tokens[i-1].Position.Column
			}
			open(col)
		}
		if flow+len(blocks) > max {
			return tk
		}
	}
	return nil
}

// Tokenize runs the YAML lexer over one document and checks its depth; the
// tokens go to the parser. line offsets error positions (documents are
// lexed one at a time).
func Tokenize(name, doc string, lineOff int) (token.Tokens, *Error) {
	tokens := lexer.Tokenize(doc)
	if tk := TooDeep(tokens, MaxDepth); tk != nil {
		return nil, &Error{File: name, Line: tk.Position.Line + lineOff, Column: tk.Position.Column,
			Msg: fmt.Sprintf("mappings and lists nest deeper than %d levels here; gpufleet reads documents nested at most %d deep", MaxDepth, MaxDepth)}
	}
	return tokens, nil
}

// CheckYAML holds a YAML document that is not a spec file (a client
// config, a node's topology file) to the same limits as spec files, before
// the caller unmarshals it.
func CheckYAML(name string, data []byte, limit int64) error {
	if int64(len(data)) > limit {
		return &SizeError{Name: name, Size: int64(len(data)), Limit: limit}
	}
	if e := CheckText(name, data); e != nil {
		return e
	}
	if _, e := Tokenize(name, string(data), 0); e != nil {
		return e
	}
	return nil
}

// CheckJSON holds a JSON document to the limits: at most limit bytes (a
// *SizeError), UTF-8, nested at most MaxDepth deep (an *Error naming the
// byte offset).
func CheckJSON(name string, data []byte, limit int64) error {
	if int64(len(data)) > limit {
		return &SizeError{Name: name, Size: int64(len(data)), Limit: limit}
	}
	if !utf8.Valid(data) {
		for i := 0; i < len(data); {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				return &Error{File: name, Msg: fmt.Sprintf("byte %#02x at offset %d is not UTF-8: JSON is UTF-8 text", data[i], i)}
			}
			i += n
		}
	}
	depth := 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '"':
			// Skip the string: to its closing quote, past escapes. Long
			// strings (a heartbeat's log bytes) go by at memory speed.
			for i++; ; i++ {
				j := bytes.IndexByte(data[i:], '"')
				if j < 0 {
					return nil // unterminated: the decoder says so
				}
				i += j
				// A quote after an odd run of backslashes is escaped.
				k := i
				for k > 0 && data[k-1] == '\\' {
					k--
				}
				if (i-k)%2 == 0 {
					break
				}
			}
		case '[', '{':
			if depth++; depth > MaxDepth {
				return &Error{File: name, Msg: fmt.Sprintf("objects and arrays nest deeper than %d levels at offset %d; gpufleet reads documents nested at most %d deep", MaxDepth, i, MaxDepth)}
			}
		case ']', '}':
			// A stray closer is the decoder's to refuse; it must not let
			// the openers after it nest deeper unseen.
			depth = max(depth-1, 0)
		}
	}
	return nil
}

// Error is one problem in a spec file.
type Error struct {
	File   string
	Line   int // 1-based; 0 when unknown
	Column int // 1-based; 0 when unknown
	// Path is the field path inside the document, e.g. gangs[0].count;
	// empty for problems of the whole document.
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors lists every problem found in one file, one per line when printed.
type Errors []*Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

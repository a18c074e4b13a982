package spec

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	"github.com/gpufleet/gpufleet/internal/spec/guard"
)

// The decoder walks the YAML syntax tree itself instead of unmarshalling
// into structs: that is what lets every error carry a line, a column and a
// field path, and lets the schema reject what it does not know.

// document is one YAML document of a file.
type document struct {
	d       *decoder
	body    ast.Node // nil for an empty document
	line    int      // line of the document's first line in the file
	anchors []anchorDef
}

// decoder collects the errors of one file.
type decoder struct {
	file    string
	errs    Errors
	count   int  // errors recorded, including those left out
	dropped bool // errors past maxErrors were left out
	lineOff int  // added to parser line numbers (documents are parsed alone)
	anchors []anchorDef
	aliases int // alias resolutions left
	// firstOnly stops documents after the first one that is not empty.
	firstOnly bool
}

type anchorDef struct {
	name   string
	offset int
	node   ast.Node
}

// maxAliases bounds alias resolutions per document, so that a file cannot
// make the decoder expand an alias graph exponentially.
const maxAliases = 1000

func newDecoder(file string) *decoder { return &decoder{file: file} }

// failed reports whether any error was recorded.
func (d *decoder) failed() bool { return len(d.errs) > 0 }

// err returns the collected errors in file order as an error, or nil.
func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	out := append(Errors(nil), d.errs...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
	})
	if d.dropped {
		out = append(out, &Error{File: d.file, Msg: fmt.Sprintf("more than %d problems; the rest are left out", maxErrors)})
	}
	return out
}

func (d *decoder) add(line, col int, path, msg string) {
	d.count++
	if len(d.errs) >= maxErrors {
		d.dropped = true
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Column: col, Path: path, Msg: msg})
}

// documents splits data into YAML documents and parses each. Documents are
// split here, at lines that start with "---", rather than by the YAML
// library, which drops the document that follows an empty one. Data over
// limit bytes, or text the guard refuses, is not parsed at all.
func (d *decoder) documents(data []byte, limit int64) []document {
	if int64(len(data)) > limit {
		e := &SizeError{Name: d.file, Size: int64(len(data)), Limit: limit}
		d.add(0, 0, "", e.Detail())
		return nil
	}
	if e := guard.CheckText(d.file, data); e != nil {
		d.add(e.Line, e.Column, "", e.Msg)
		return nil
	}
	var docs []document
	src := string(data)
	start, startLine, line := 0, 1, 1
	flush := func(end int) {
		chunk := src[start:end]
		if doc, ok := d.parse(chunk, startLine); ok {
			docs = append(docs, doc)
		}
	}
	for i := 0; i < len(src) && (!d.firstOnly || len(docs) == 0); {
		j := strings.IndexByte(src[i:], '\n')
		next := len(src)
		if j >= 0 {
			next = i + j + 1
		}
		if i > start && isDocStart(src[i:next]) {
			flush(i)
			start, startLine = i, line
		}
		i = next
		line++
	}
	if !d.firstOnly || len(docs) == 0 {
		flush(len(src))
	}
	return docs
}

func isDocStart(line string) bool {
	if !strings.HasPrefix(line, "---") {
		return false
	}
	rest := line[3:]
	return rest == "" || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r'
}

// parse parses one document's text. Empty documents (only comments or a
// marker) are left out.
func (d *decoder) parse(chunk string, firstLine int) (doc document, ok bool) {
	d.lineOff = firstLine - 1
	defer func() {
		// The YAML library is third-party code fed with user input; a panic
		// in it must become an error, not bring down a server.
		if r := recover(); r != nil {
			d.add(firstLine, 0, "", fmt.Sprintf("YAML parser failed: %v", r))
			ok = false
		}
	}()
	tokens, e := guard.Tokenize(d.file, chunk, d.lineOff)
	if e != nil {
		d.add(e.Line, e.Column, "", e.Msg)
		return document{}, false
	}
	f, err := parser.Parse(tokens, 0)
	if err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil {
			p := ye.GetToken().Position
			d.add(p.Line+d.lineOff, p.Column, "", "YAML syntax: "+ye.GetMessage())
		} else {
			d.add(firstLine, 0, "", "YAML syntax: "+err.Error())
		}
		return document{}, false
	}
	var body ast.Node
	for _, x := range f.Docs {
		if x == nil || x.Body == nil {
			continue
		}
		if body != nil {
			p := x.Body.GetToken().Position
			d.add(p.Line+d.lineOff, p.Column, "", "YAML syntax: a second document needs a --- line before it")
			return document{}, false
		}
		body = x.Body
	}
	if body == nil {
		return document{}, false
	}
	d.anchors = nil
	d.collectAnchors(body, 0)
	return document{d: d, body: body, line: firstLine, anchors: d.anchors}, true
}

func (d *decoder) collectAnchors(n ast.Node, depth int) {
	if n == nil || depth > 200 {
		return
	}
	switch t := n.(type) {
	case *ast.AnchorNode:
		if t.Name != nil && t.Name.GetToken() != nil {
			d.anchors = append(d.anchors, anchorDef{name: t.Name.GetToken().Value, offset: t.Start.Position.Offset, node: t.Value})
		}
		d.collectAnchors(t.Value, depth+1)
	case *ast.TagNode:
		d.collectAnchors(t.Value, depth+1)
	case *ast.MappingNode:
		for _, v := range t.Values {
			d.collectAnchors(v, depth+1)
		}
	case *ast.MappingValueNode:
		d.collectAnchors(t.Key, depth+1)
		d.collectAnchors(t.Value, depth+1)
	case *ast.MappingKeyNode:
		d.collectAnchors(t.Value, depth+1)
	case *ast.SequenceNode:
		for _, v := range t.Values {
			d.collectAnchors(v, depth+1)
		}
	}
}

// root returns the document's top-level value. Documents are read one
// after the other; root makes the decoder place lines and resolve aliases
// for this one.
func (doc document) root() value {
	d := doc.d
	d.lineOff, d.anchors, d.aliases = doc.line-1, doc.anchors, maxAliases
	return d.value(doc.body, "", token.Position{Line: 1})
}

// value is a resolved node (no anchor, alias or tag left) and its path.
type value struct {
	d    *decoder
	n    ast.Node
	path string
	line int
	col  int
}

// value resolves n; at is where it stands in the file when n carries no
// position of its own. A value reached through an alias is placed at the
// alias, where the reader of an error would look.
func (d *decoder) value(n ast.Node, path string, at token.Position) value {
	v := value{d: d, path: path, line: at.Line + d.lineOff, col: at.Column}
	aliased := false
resolve:
	for range 64 {
		switch t := n.(type) {
		case nil:
			v.errorf("the value is missing")
			return v
		case *ast.AnchorNode:
			n = t.Value
		case *ast.TagNode:
			if tag := t.Start.Value; !strings.HasPrefix(tag, "!!") {
				v.setPos(n)
				v.errorf("YAML tag %s is not supported", tag)
				return v
			}
			n = t.Value
		case *ast.AliasNode:
			if !aliased {
				v.setPos(n)
				aliased = true
			}
			name := ""
			if t.Value != nil && t.Value.GetToken() != nil {
				name = t.Value.GetToken().Value
			}
			if d.aliases <= 0 {
				v.errorf("more than %d aliases in one document", maxAliases)
				return v
			}
			d.aliases--
			if n = d.anchor(name, t.Start.Position.Offset); n == nil {
				v.errorf("alias *%s names no anchor before it", name)
				return v
			}
		default:
			break resolve
		}
	}
	switch n.(type) {
	case *ast.AnchorNode, *ast.TagNode, *ast.AliasNode:
		v.errorf("anchors, aliases and tags nest too deep")
		return v
	}
	v.n = n
	if !aliased {
		v.setPos(n)
	}
	return v
}

func (d *decoder) anchor(name string, offset int) ast.Node {
	for i := len(d.anchors) - 1; i >= 0; i-- {
		a := d.anchors[i]
		if a.name == name && a.offset < offset {
			return a.node
		}
	}
	return nil
}

// setPos moves v's position to n's first token when n has one.
func (v *value) setPos(n ast.Node) {
	if n == nil {
		return
	}
	var p *token.Position
	switch t := n.(type) {
	case *ast.MappingNode:
		if len(t.Values) > 0 && t.Values[0].Key != nil && !t.IsFlowStyle {
			p = t.Values[0].Key.GetToken().Position
		} else if t.Start != nil {
			p = t.Start.Position
		}
	case *ast.MappingValueNode:
		if t.Key != nil {
			p = t.Key.GetToken().Position
		}
	case *ast.NullNode:
		// An empty value's token sits after the colon; keep the key's
		// position, which the caller passed.
		return
	default:
		if tk := n.GetToken(); tk != nil {
			p = tk.Position
		}
	}
	if p != nil {
		v.line, v.col = p.Line+v.d.lineOff, p.Column
	}
}

func (v value) errorf(format string, args ...any) {
	v.d.add(v.line, v.col, v.path, fmt.Sprintf(format, args...))
}

// ok reports whether v holds a node (it does not after a resolution error).
func (v value) ok() bool { return v.n != nil }

func (v value) isNull() bool {
	_, null := v.n.(*ast.NullNode)
	return null
}

// what names v's YAML type for "want X, got Y" messages.
func (v value) what() string {
	switch t := v.n.(type) {
	case nil:
		return "nothing"
	case *ast.NullNode:
		return "null"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	default:
		return strings.ToLower(t.Type().String())
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// pair is one entry of a mapping.
type pair struct {
	key       string
	line, col int // the key's position
	val       value
}

// pairs returns a mapping's entries in file order; keys must be scalars.
func (v value) pairs() ([]pair, bool) {
	if !v.ok() {
		return nil, false
	}
	var mvs []*ast.MappingValueNode
	switch t := v.n.(type) {
	case *ast.MappingNode:
		mvs = t.Values
	case *ast.MappingValueNode:
		mvs = []*ast.MappingValueNode{t}
	default:
		v.errorf("want a mapping, got %s", v.what())
		return nil, false
	}
	out := make([]pair, 0, len(mvs))
	good := true
	for _, mv := range mvs {
		kp := mv.Key.GetToken().Position
		if _, merge := mv.Key.(*ast.MergeKeyNode); merge {
			v.d.add(kp.Line+v.d.lineOff, kp.Column, v.path, "merge keys (<<) are not supported; write the fields out")
			good = false
			continue
		}
		kv := v.d.value(mv.Key, v.path, *kp)
		key, isScalar := kv.scalarText()
		if !isScalar || kv.isNull() {
			kv.errorf("a key must be a plain string, got %s", kv.what())
			good = false
			continue
		}
		val := v.d.value(mv.Value, join(v.path, key), *kp)
		if !val.ok() {
			good = false
			continue
		}
		out = append(out, pair{key: key, line: kp.Line + v.d.lineOff, col: kp.Column, val: val})
	}
	return out, good
}

// fields reads a mapping with a fixed set of keys; unknown keys are errors
// that list the known ones. The boolean is false when v is not a mapping at
// all, and then nothing more should be read from it.
type fields struct {
	v    value
	vals map[string]value
}

func (v value) fields(known ...string) (fields, bool) {
	fs := fields{v: v, vals: map[string]value{}}
	if !v.ok() {
		return fs, false
	}
	switch v.n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
	default:
		v.errorf("want a mapping, got %s", v.what())
		return fs, false
	}
	ps, _ := v.pairs()
	for _, p := range ps {
		found := false
		for _, k := range known {
			if p.key == k {
				found = true
				break
			}
		}
		if !found {
			v.d.add(p.line, p.col, p.val.path, fmt.Sprintf("unknown field (want one of %s)", strings.Join(known, ", ")))
			continue
		}
		fs.vals[p.key] = p.val
	}
	return fs, true
}

// get returns the field's value when present.
func (fs fields) get(key string) (value, bool) {
	v, ok := fs.vals[key]
	return v, ok
}

// need returns the field's value or records that it is missing.
func (fs fields) need(key string) (value, bool) {
	v, ok := fs.vals[key]
	if !ok {
		fs.v.d.add(fs.v.line, fs.v.col, join(fs.v.path, key), "is required")
	}
	return v, ok
}

// seq returns a list's elements.
func (v value) seq() ([]value, bool) {
	if !v.ok() {
		return nil, false
	}
	s, ok := v.n.(*ast.SequenceNode)
	if !ok {
		v.errorf("want a list, got %s", v.what())
		return nil, false
	}
	out := make([]value, 0, len(s.Values))
	good := true
	for i, e := range s.Values {
		at := token.Position{Line: v.line - v.d.lineOff, Column: v.col}
		if i < len(s.Entries) && s.Entries[i] != nil && s.Entries[i].Start != nil {
			at = *s.Entries[i].Start.Position
		}
		ev := v.d.value(e, fmt.Sprintf("%s[%d]", v.path, i), at)
		if !ev.ok() {
			good = false
			continue
		}
		out = append(out, ev)
	}
	return out, good
}

// scalarText returns the text of any scalar: a string's value, or a
// number's or boolean's source text.
func (v value) scalarText() (string, bool) {
	switch t := v.n.(type) {
	case *ast.StringNode:
		return t.Value, true
	case *ast.LiteralNode:
		if t.Value != nil {
			return t.Value.Value, true
		}
		return "", true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return t.GetToken().Value, true
	case *ast.NullNode:
		return "", true
	}
	return "", false
}

// str reads a string. Numbers and booleans are taken as written, so
// `command: [train, --epochs, 3]` means the string "3".
func (v value) str() (string, bool) {
	if !v.ok() {
		return "", false
	}
	s, ok := v.scalarText()
	if !ok || v.isNull() {
		v.errorf("want a string, got %s", v.what())
		return "", false
	}
	return s, true
}

// integer reads a whole number.
func (v value) integer() (int64, bool) {
	if !v.ok() {
		return 0, false
	}
	t, ok := v.n.(*ast.IntegerNode)
	if !ok {
		if f, isFloat := v.n.(*ast.FloatNode); isFloat {
			v.errorf("%s: want a whole number", f.GetToken().Value)
		} else {
			v.errorf("want an integer, got %s", v.what())
		}
		return 0, false
	}
	switch x := t.Value.(type) {
	case int64:
		return x, true
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x), true
		}
	}
	v.errorf("%s: integer out of range", t.GetToken().Value)
	return 0, false
}

// intIn reads an integer in lo..hi.
func (v value) intIn(lo, hi int64) (int64, bool) {
	x, ok := v.integer()
	if !ok {
		return 0, false
	}
	if x < lo || x > hi {
		v.errorf("%d, want %d..%d", x, lo, hi)
		return 0, false
	}
	return x, true
}

// number reads an integer or decimal number.
func (v value) number() (float64, bool) {
	if !v.ok() {
		return 0, false
	}
	switch t := v.n.(type) {
	case *ast.FloatNode:
		return t.Value, true
	case *ast.IntegerNode:
		switch x := t.Value.(type) {
		case int64:
			return float64(x), true
		case uint64:
			return float64(x), true
		}
	}
	v.errorf("want a number, got %s", v.what())
	return 0, false
}

// boolean reads true or false.
func (v value) boolean() (bool, bool) {
	if !v.ok() {
		return false, false
	}
	t, ok := v.n.(*ast.BoolNode)
	if !ok {
		v.errorf("want true or false, got %s", v.what())
		return false, false
	}
	return t.Value, true
}

// numberText returns the source text of a number, or of a string, for
// values parsed exactly from their decimal text (quotas, CPU, sizes).
func (v value) numberText() (text string, quoted bool, ok bool) {
	if !v.ok() {
		return "", false, false
	}
	switch t := v.n.(type) {
	case *ast.IntegerNode, *ast.FloatNode:
		return t.GetToken().Value, false, true
	case *ast.StringNode:
		return t.Value, true, true
	}
	v.errorf("want a number, got %s", v.what())
	return "", false, false
}

// stringList reads a list of strings, or a single string as a list of one
// when single is true.
func (v value) stringList(single bool) ([]string, []value, bool) {
	if single {
		if _, isSeq := v.n.(*ast.SequenceNode); !isSeq {
			s, ok := v.str()
			return []string{s}, []value{v}, ok
		}
	}
	elems, ok := v.seq()
	out := make([]string, 0, len(elems))
	for _, e := range elems {
		s, good := e.str()
		ok = ok && good
		out = append(out, s)
	}
	return out, elems, ok
}

// stringMap reads a mapping of strings to strings, keys in file order.
// checkKey and checkVal, when set, say why a key or a value is refused.
func (v value) stringMap(checkKey, checkVal func(string) string) (map[string]string, bool) {
	ps, ok := v.pairs()
	if !ok && ps == nil {
		return nil, false
	}
	out := make(map[string]string, len(ps))
	for _, p := range ps {
		if checkKey != nil {
			if msg := checkKey(p.key); msg != "" {
				v.d.add(p.line, p.col, p.val.path, "key "+msg)
				ok = false
				continue
			}
		}
		s, good := p.val.str()
		if good && checkVal != nil {
			if msg := checkVal(s); msg != "" {
				p.val.errorf("%s", msg)
				good = false
			}
		}
		ok = ok && good
		out[p.key] = s
	}
	return out, ok
}

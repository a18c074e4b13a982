package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gpufleet/gpufleet/internal/spec/guard"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
)

// bombs are documents nested far deeper than any spec, in the shapes a YAML
// parser nests: flow brackets (JSON too), compact block sequences and
// explicit keys on one line, and indented block mappings.
func bombs() map[string]string {
	indented := ""
	for i := range 300 {
		indented += strings.Repeat(" ", i) + "k:\n"
	}
	return map[string]string{
		"json arrays":       strings.Repeat("[", 50000) + strings.Repeat("]", 50000),
		"json objects":      strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000),
		"flow in a job":     "name: j\nqueue: q\nkind: batch\ngangs: " + strings.Repeat("[", 30000) + "\n",
		"block sequences":   strings.Repeat("- ", 50000) + "x\n",
		"explicit keys":     strings.Repeat("? ", 50000) + "x\n",
		"indented mappings": indented,
	}
}

// A nesting bomb is refused before the parser sees it, naming the line and
// column, and refusing it costs memory in proportion to its size (the
// parser alone took 2.5 GB for the first of these at 100 KB).
func TestNestingBombsAreRefusedCheaply(t *testing.T) {
	for name, doc := range bombs() {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := ParseJob("bomb.yaml", []byte(doc))
			runtime.ReadMemStats(&after)
			var list Errors
			if !errors.As(err, &list) || len(list) != 1 || list[0].Line < 1 || list[0].Column < 1 ||
				!strings.Contains(list[0].Msg, fmt.Sprintf("nest deeper than %d levels", MaxDepth)) {
				t.Fatalf("got %v, want one located depth error", err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
				t.Errorf("refusing a %d-byte document allocated %d MB", len(doc), alloc>>20)
			}
		})
	}
}

// deepQueues is a queue tree as deep as ParseQueues allows, in block style.
func deepQueues() string {
	var b strings.Builder
	b.WriteString("kind: queues\ntenants:\n  - name: t\n    quotas: {h100: {nominal: 1, borrowingLimit: 2}}\n")
	indent := "    "
	for i := range maxQueueDepth {
		fmt.Fprintf(&b, "%squeues:\n%s  - name: q%d\n%s    quotas:\n%s      h100:\n%s        nominal: 1\n", indent, indent, i, indent, indent, indent)
		indent += "    "
	}
	return b.String()
}

// Every document gpufleet ships, and the deepest queue tree it accepts,
// passes the guard with room to spare.
func TestRealDocumentsPassTheGuard(t *testing.T) {
	docs := map[string][]byte{"default fleet": DefaultFleetYAML(), "default queues": DefaultQueuesYAML()}
	for _, e := range Examples() {
		docs[e.Name] = e.Data
	}
	paths, _ := filepath.Glob(filepath.Join(testdata, "*", "*.yaml"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		docs[p] = data
	}
	for name, data := range docs {
		if tk := guard.TooDeep(lexer.Tokenize(string(data)), MaxDepth/2); tk != nil {
			t.Errorf("%s nests deeper than %d at line %d", name, MaxDepth/2, tk.Position.Line)
		}
	}
	if _, err := ParseQueues("deep.yaml", []byte(deepQueues())); err != nil {
		t.Errorf("the deepest queue tree: %v", err)
	}
	if tk := guard.TooDeep(lexer.Tokenize(deepQueues()), MaxDepth*7/8); tk != nil {
		t.Errorf("the deepest queue tree nests deeper than %d at line %d", MaxDepth*7/8, tk.Position.Line)
	}
}

func TestDocumentLimits(t *testing.T) {
	big := "name: j\nqueue: q\nkind: batch\ngangs: [{replicas: 1}]\ncommand: [x]\n# " + strings.Repeat("x", MaxJobBytes) + "\n"
	for name, tc := range map[string]struct {
		parse func() error
		want  string
	}{
		"job over 1 MiB": {func() error { _, err := ParseJob("big.yaml", []byte(big)); return err },
			"big.yaml: is 1.0 MiB (1048644 bytes); gpufleet reads at most 1 MiB (1048576 bytes) here"},
		"fleet over 16 MiB": {func() error {
			_, err := ParseFleet("f.yaml", make([]byte, MaxFileBytes+1))
			return err
		}, "f.yaml: is 16.0 MiB (16777217 bytes); gpufleet reads at most 16 MiB (16777216 bytes) here"},
		"not UTF-8": {func() error { _, err := ParseJob("j.yaml", []byte("name: j\ncommand: [\"a\xffb\"]\n")); return err },
			"j.yaml:2:13: byte 0xff is not UTF-8"},
		"raw NUL": {func() error { _, err := ParseJob("j.yaml", []byte("name: j\x00\n")); return err },
			"j.yaml:1:8: control character U+0000 is not allowed"},
		"escape in a list": {func() error { _, err := ParseJob("j.yaml", []byte("- \x1b\n")); return err },
			"j.yaml:1:3: control character U+001B"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.parse()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %v, want %q...", err, tc.want)
			}
		})
	}
}

func TestCheckJSON(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	ok := strings.Repeat("[", MaxDepth) + `"]]]][[[["` + strings.Repeat("]", MaxDepth)
	for name, tc := range map[string]struct {
		body, want string
	}{
		"at the limit, brackets in a string": {ok, ""},
		"one too deep":                       {deep, fmt.Sprintf("body: objects and arrays nest deeper than %d levels at offset %d", MaxDepth, MaxDepth)},
		"escaped quote":                      {`{"a":"\"[[[[","b":1}`, ""},
		"not UTF-8":                          {"{\"a\":\"\xc3\"}", "body: byte 0xc3 at offset 6 is not UTF-8"},
		"too large":                          {strings.Repeat(" ", 11), "body: is 11 bytes; gpufleet reads at most 10 bytes here"},
	} {
		t.Run(name, func(t *testing.T) {
			limit := int64(1 << 20)
			if name == "too large" {
				limit = 10
			}
			err := CheckJSON("body", []byte(tc.body), limit)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Errorf("got %v, want %q...", err, tc.want)
			}
		})
	}
}

// astDepth is the nesting of mappings and sequences in a parsed document.
func astDepth(n ast.Node) int {
	switch t := n.(type) {
	case *ast.DocumentNode:
		return astDepth(t.Body)
	case *ast.AnchorNode:
		return astDepth(t.Value)
	case *ast.TagNode:
		return astDepth(t.Value)
	case *ast.MappingKeyNode:
		return astDepth(t.Value)
	case *ast.MappingNode:
		d := 0
		for _, v := range t.Values {
			d = max(d, astDepth(v.Key), astDepth(v.Value))
		}
		return d + 1
	case *ast.MappingValueNode:
		return 1 + max(astDepth(t.Key), astDepth(t.Value))
	case *ast.SequenceNode:
		d := 0
		for _, v := range t.Values {
			d = max(d, astDepth(v))
		}
		return d + 1
	}
	return 0
}

// jsonDepth is the nesting of arrays and objects in a decoded JSON value.
func jsonDepth(v any) int {
	d := 0
	switch t := v.(type) {
	case []any:
		for _, e := range t {
			d = max(d, jsonDepth(e))
		}
		return d + 1
	case map[string]any:
		for _, e := range t {
			d = max(d, jsonDepth(e))
		}
		return d + 1
	}
	return 0
}

// FuzzGuard checks the guard against the parsers it protects: whatever YAML
// the token count lets through with a small limit parses no deeper than
// twice that limit (the bound the count promises), and the JSON scan
// refuses exactly the bodies that nest past MaxDepth.
func FuzzGuard(f *testing.F) {
	for _, d := range bombs() {
		f.Add([]byte(d[:min(len(d), 200)]))
	}
	f.Add([]byte(deepQueues()))
	f.Add([]byte("a:\n- b:\n  - c:\n    - d: [e, {f: [g]}]\n"))
	f.Add([]byte("? - [a]\n: - {b: c}\n"))
	f.Add([]byte(`{"a": [1, {"b": "]]"}], "c": "\\"[["}`))
	f.Add([]byte("k: |\n  [[[[\n  {{\nv: '[[['\n"))
	for _, e := range Examples() {
		f.Add(e.Data)
	}
	const small = 4
	f.Fuzz(func(t *testing.T, data []byte) {
		tokens := lexer.Tokenize(string(data))
		if guard.TooDeep(tokens, small) == nil {
			if file, err := parser.Parse(tokens, 0); err == nil {
				for _, doc := range file.Docs {
					if d := astDepth(doc); d > 2*small+1 {
						t.Fatalf("the guard passed a document %d deep with limit %d:\n%s", d, small, data)
					}
				}
			}
		}
		var v any
		if utf8.Valid(data) && json.Unmarshal(data, &v) == nil {
			err := CheckJSON("body", data, 1<<20)
			if deep := jsonDepth(v) > MaxDepth; deep != (err != nil) {
				t.Fatalf("JSON %d deep: CheckJSON said %v", jsonDepth(v), err)
			}
		}
	})
}

// BenchmarkGuard measures what the guard adds to reading a document: the
// depth count over tokens the parser takes anyway (the default fleet,
// lexed once outside the timing), and the byte scan of a 1 MiB JSON body
// (a heartbeat carrying log bytes), beside parsing the same fleet.
func BenchmarkGuard(b *testing.B) {
	fleetYAML := DefaultFleetYAML()
	b.Run("depth/default-fleet", func(b *testing.B) {
		tokens := lexer.Tokenize(string(fleetYAML))
		b.SetBytes(int64(len(fleetYAML)))
		for range b.N {
			if guard.TooDeep(tokens, MaxDepth) != nil {
				b.Fatal("too deep")
			}
		}
	})
	b.Run("text/default-fleet", func(b *testing.B) {
		b.SetBytes(int64(len(fleetYAML)))
		for range b.N {
			if guard.CheckText("f", fleetYAML) != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("parse/default-fleet", func(b *testing.B) {
		b.SetBytes(int64(len(fleetYAML)))
		for range b.N {
			if _, err := ParseFleet("f", fleetYAML); err != nil {
				b.Fatal(err)
			}
		}
	})
	body := []byte(`{"node":"n1","logs":[{"job":"j","gang":0,"replica":0,"attempt":1,"offset":0,"data":"` +
		strings.Repeat("aGVsbG8gd29ybGQK", 1<<16) + `"}]}`)
	b.Run("json/1MiB-heartbeat", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for range b.N {
			if err := CheckJSON("body", body, 16<<20); err != nil {
				b.Fatal(err)
			}
		}
	})
}

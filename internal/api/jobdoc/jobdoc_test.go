package jobdoc

import (
	"strings"
	"testing"

	"github.com/gpufleet/gpufleet/internal/api"
)

func checkRefusal(t *testing.T, e *api.Error) {
	t.Helper()
	if e.Status < 400 || e.Status > 499 || e.Code == "" || e.Message == "" {
		t.Fatalf("refusal without status, code or message: %#v", e)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("name: train\nqueue: acme-train\nkind: training\ngangs:\n  - replicas: 2\n    accelerators: h100\n    count: 8\ncommand: [sh, -c, 'echo $RANK']\n"))
	f.Add([]byte(`{"name":"j","queue":"q","kind":"batch","gangs":[{"replicas":1,"fraction":0.5}],"command":["true"]}`))
	f.Add([]byte("name: j\nqueue: q\nkind: batch\ngangs: []\n"))
	f.Add([]byte("name: j\nqueue: q\nkind: batch\ngangs:\n  - replicas: 1\n    count: 1\n    fraction: 0.5\ncommand: [x]\n"))
	f.Add([]byte("name: j\nqueue: q\nkind: batch\ngangs:\n  - replicas: 1\ncommand: [x]\nenv: {\"A=B\": c}\n"))
	f.Add([]byte(`{"name":"j","queue":"q","kind":"batch","gangs":[{"replicas":1}],"command":["x"],}`))
	f.Add([]byte(`{"name":"j","queue":"q","kind":"batch","gangs":[[[[[[{"replicas":1}]]]]]],"command":["a\u0000"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		js, e := Decode("job.yaml", data)
		if e != nil {
			checkRefusal(t, e)
			return
		}
		if err := js.Job.Validate(); err != nil {
			t.Fatalf("accepted a job its own validation refuses: %v", err)
		}
		if len(js.Run.Command) == 0 || js.Run.Command[0] == "" {
			t.Fatalf("accepted a job without a command")
		}
	})
}

func TestDecodeNamesTheField(t *testing.T) {
	_, e := Decode("j.yaml", []byte("name: j\nqueue: q\nkind: batch\ngangs:\n  - replicas: 1\n    count: 99\ncommand: [x]\n"))
	if e == nil || e.Field != "gangs[0].count" || e.Status != 422 {
		t.Fatalf("got %#v, want a 422 naming gangs[0].count", e)
	}
}

func TestDecodeJobTakesJSON(t *testing.T) {
	js, e := Decode("job.json", []byte(`{"name":"j","queue":"q","kind":"batch","gangs":[{"replicas":2,"accelerators":"h100","fraction":0.5}],"command":["python","train.py"],"env":{"A":"1"}}`))
	if e != nil {
		t.Fatal(e)
	}
	if g := js.Job.Gangs[0]; g.Replicas != 2 || g.Shape.Milli != 500 || js.Run.Command[1] != "train.py" || js.Run.Env["A"] != "1" {
		t.Errorf("decoded %+v", js)
	}
}

// A job sent as JSON gets JSON's account of a syntax error, with the line
// and column; a YAML flow mapping (which starts like JSON) is still YAML.
func TestDecodeJobJSONSyntax(t *testing.T) {
	const good = `{"name":"j","queue":"q","kind":"batch","gangs":[{"replicas":1}],"command":["x"]}`
	for name, tc := range map[string]struct {
		body, format, want string
	}{
		"trailing comma":       {"{\n  \"name\": \"j\",\n}", api.FormatJSON, "job.json:3:1: JSON syntax: invalid character '}' looking for beginning of object key string"},
		"sniffed":              {`{"name": "j" "queue": "q"}`, "", "job.json:1:14: JSON syntax: invalid character '\"' after object key:value pair"},
		"cut short":            {`{"name": "j"`, api.FormatJSON, "job.json:1:13: JSON syntax: the document ends inside a value"},
		"an array":             {`[1]`, api.FormatJSON, "job.json:1:1: JSON syntax: a job is a JSON object, not an array"},
		"two objects":          {good + " {}", api.FormatJSON, "job.json:1:82: JSON syntax: more data after the job's object"},
		"valid JSON":           {good, api.FormatJSON, ""},
		"YAML flow, sniffed":   {"{name: j, queue: q, kind: batch, gangs: [{replicas: 1}], command: [x]}", "", ""},
		"YAML said to be YAML": {"{name: j,,}", api.FormatYAML, "YAML syntax"},
	} {
		t.Run(name, func(t *testing.T) {
			_, e := DecodeAs("job.json", []byte(tc.body), tc.format)
			switch {
			case tc.want == "" && e != nil:
				t.Fatalf("refused: %v", e)
			case tc.want != "" && (e == nil || e.Status != 422 || !strings.Contains(e.Message, tc.want)):
				t.Fatalf("got %v, want a 422 saying %q", e, tc.want)
			}
		})
	}
}

// Request bodies nested past the guard's limit are refused before decoding.

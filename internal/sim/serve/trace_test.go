package serve

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestReadAzure(t *testing.T) {
	in := "TIMESTAMP,ContextTokens,GeneratedTokens\r\n" +
		"2023-11-16 18:17:04.0319600,3180,8\r\n" +
		"2023-11-16 18:17:03.9799600,4808,10\r\n" + // out of order: sorted
		"2023-11-16 18:17:05,110,27\r\n"
	got, err := Read("t.csv", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Request{
		{Arrival: 0, Prompt: 4808, Output: 10},
		{Arrival: 52 * time.Millisecond, Prompt: 3180, Output: 8},
		{Arrival: 1020040 * time.Microsecond, Prompt: 110, Output: 27},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestReadJSONL(t *testing.T) {
	in := `{"timestamp": 1000, "input_length": 12, "output_length": 3, "hash_ids": [1, 2, 3]}

{"output_length": 5, "timestamp": 250.5, "input_length": 7}
`
	got, err := Read("t.jsonl", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Request{{Arrival: 0, Prompt: 7, Output: 5}, {Arrival: 749500 * time.Microsecond, Prompt: 12, Output: 3}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestReadErrors(t *testing.T) {
	const hdr = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
	tests := map[string]struct{ in, want string }{
		"empty":            {"", "t:1:1: no requests: the file is empty or blank"},
		"blank":            {"\n  \n", "t:1:1: no requests: the file is empty or blank"},
		"header only":      {hdr, "t:2:1: no requests: the file has a header only"},
		"unknown column":   {"TIMESTAMP,Prompt,GeneratedTokens\n", `t:1:11: header: unknown column "Prompt": want TIMESTAMP, ContextTokens, GeneratedTokens`},
		"column twice":     {"TIMESTAMP,ContextTokens,ContextTokens\n", `t:1:25: header: column "ContextTokens" appears twice`},
		"too few fields":   {hdr + "2023-11-16 18:17:03,1\n", "t:2:1: want 3 fields: TIMESTAMP,ContextTokens,GeneratedTokens"},
		"bad timestamp":    {hdr + "yesterday,1,2\n", `t:2:1: TIMESTAMP "yesterday": want YYYY-MM-DD HH:MM:SS[.fraction]`},
		"zero prompt":      {hdr + "2023-11-16 18:17:03,0,2\n", `t:2:21: ContextTokens "0": want a whole number from 1 to 10000000`},
		"fractional count": {hdr + "2023-11-16 18:17:03,5,2.5\n", `t:2:23: GeneratedTokens "2.5": want a whole number from 1 to 10000000`},
		"huge count":       {hdr + "2023-11-16 18:17:03,99999999999,2\n", `t:2:21: ContextTokens "99999999999": want a whole number from 1 to 10000000`},
		"bare quote":       {hdr + "2023-11-16 18:17:03,1\"2,3\n", `t:2:22: bare " in non-quoted-field`},
		"json not object":  {"{\"timestamp\": 1, \"input_length\": 1, \"output_length\": 1}\n[1]\n", "t:2:1: want a JSON object with timestamp, input_length, output_length"},
		"json missing":     {`{"timestamp": 1, "input_length": 1}`, `t:1:1: missing "output_length": want timestamp, input_length, output_length`},
		"json twice":       {`{"timestamp": 1, "timestamp": 2, "input_length": 1, "output_length": 1}`, `t:1:18: key "timestamp" appears twice`},
		"json string":      {`{"timestamp": "1", "input_length": 1, "output_length": 1}`, `t:1:15: timestamp: want a number, got 1`},
		"json array":       {`{"timestamp": 1, "input_length": [1], "output_length": 1}`, `t:1:34: input_length: want a number, not an array or object`},
		"json negative":    {`{"timestamp": -5, "input_length": 1, "output_length": 1}`, `t:1:15: timestamp -5: want milliseconds from the start, 0 to 31536000000`},
		"json zero tokens": {`{"timestamp": 5, "input_length": 1, "output_length": 0}`, `t:1:54: output_length "0": want a whole number from 1 to 10000000`},
		"json float count": {`{"timestamp": 5, "input_length": 1.5, "output_length": 2}`, `t:1:34: input_length "1.5": want a whole number from 1 to 10000000`},
		"json cut short":   {`{"timestamp": 5, "input_length": 1`, "t:1:35: malformed JSON: the object is cut short"},
		"json two objects": {`{"timestamp": 5, "input_length": 1, "output_length": 2} {}`, "t:1:57: want one JSON object a line"},
		"json bad syntax":  {`{"timestamp": 5,, "input_length": 1}`, "t:1:17: malformed JSON: invalid character ',' looking for beginning of object key string"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Read("t", strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Errorf("error %q is not a LineError", err)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %q\nwant %q", err, tc.want)
			}
		})
	}
}

func TestLoadTestdata(t *testing.T) {
	for _, name := range []string{"azure_code_400.csv", "azure_conv_400.csv", "conv_400.jsonl"} {
		reqs, err := Load(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if len(reqs) != 400 {
			t.Errorf("%s: %d requests, want 400", name, len(reqs))
		}
	}
	csv, _ := Load(filepath.Join("testdata", "azure_conv_400.csv"))
	jsonl, _ := Load(filepath.Join("testdata", "conv_400.jsonl"))
	// The JSON Lines copy has millisecond timestamps.
	for i := range csv {
		csv[i].Arrival = csv[i].Arrival.Round(time.Millisecond)
	}
	if diff := cmp.Diff(csv, jsonl); diff != "" {
		t.Errorf("the CSV and the JSON Lines copy differ (-csv +jsonl):\n%s", diff)
	}
}

// fuzzRead checks what every reader must do with any input: return
// requests or a LineError, never panic; accepted requests are sorted,
// start at 0 and have counts within bounds.
func fuzzRead(t *testing.T, data string) {
	reqs, err := Read("f", strings.NewReader(data))
	if err != nil {
		var le *LineError
		if !errors.As(err, &le) {
			t.Fatalf("error %q is not a LineError", err)
		}
		if le.Line < 1 || le.Column < 1 {
			t.Fatalf("error %q has no position", err)
		}
		return
	}
	if len(reqs) == 0 {
		t.Fatal("no error and no requests")
	}
	if reqs[0].Arrival != 0 {
		t.Fatalf("first arrival %s, want 0", reqs[0].Arrival)
	}
	for i, r := range reqs {
		if i > 0 && r.Arrival < reqs[i-1].Arrival {
			t.Fatalf("request %d arrives before request %d", i, i-1)
		}
		if r.Prompt < 1 || r.Prompt > MaxTokens || r.Output < 1 || r.Output > MaxTokens {
			t.Fatalf("request %d: counts out of bounds: %+v", i, r)
		}
	}
}

func FuzzReadAzure(f *testing.F) {
	f.Add("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n2023-11-16 18:17:04.0319600,3180,8\n")
	f.Add("GeneratedTokens,TIMESTAMP,ContextTokens\r\n1,2023-11-16 18:17:03,2\r\n")
	f.Add("TIMESTAMP,ContextTokens,GeneratedTokens\n\"2023-11-16 18:17:03\",1,\"2\"\n")
	f.Fuzz(fuzzRead)
}

func FuzzReadJSONL(f *testing.F) {
	f.Add(`{"timestamp": 0, "input_length": 374, "output_length": 44}` + "\n" + `{"timestamp": 4315, "input_length": 396, "output_length": 109, "hash_ids": [1]}`)
	f.Add(`{"timestamp": 1e3, "input_length": 1, "output_length": 1}`)
	f.Add("\n\n{}\n")
	f.Fuzz(fuzzRead)
}

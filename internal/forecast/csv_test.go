package forecast

import (
	"bytes"
	"encoding/csv"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseM4Sample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "m4-hourly-sample.csv"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseM4(data, "m4-hourly-sample.csv")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID          string
		N           int
		First, Last float64
	}
	var rows []row
	for _, s := range got {
		rows = append(rows, row{s.ID, len(s.Values), s.Values[0], s.Values[len(s.Values)-1]})
	}
	want := []row{
		{"H1", 700, 605, 684},
		{"H75", 700, 15006, 14288},
		{"H130", 700, 131, 11},
		{"H253", 960, 13.8, 20.4},
		{"H272", 960, 10.6, 21.9},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
}

func TestParseM4Errors(t *testing.T) {
	tests := map[string]struct {
		in, want string
	}{
		"empty":       {"", `h.csv:1: empty file: want a header "V1","V2" and so on`},
		"header gap":  {"\"V1\",\"V3\"\n", `h.csv:1:6: header: column 2 is "V3": want "V2" (the header is V1, V2, ... in order)`},
		"header name": {"id,V2\n", `h.csv:1:1: header: column 1 is "id": want "V1" (the header is V1, V2, ... in order)`},
		"only V1":     {"V1\nH1\n", `h.csv:1: header: only V1: want V1 (the id) and at least one observation column`},
		"short line":  {"V1,V2,V3\nH1,1\n", `h.csv:2: 2 fields: want 3, as many as the header (pad a shorter series with empty fields)`},
		"empty id":    {"V1,V2\n,1\n", `h.csv:2:1: V1: "": want a non-empty id without surrounding spaces`},
		"spaced id":   {"V1,V2\n H1,1\n", `h.csv:2:1: V1: " H1": want a non-empty id without surrounding spaces`},
		"twice":       {"V1,V2\nH1,1\nH1,2\n", `h.csv:3:1: V1: "H1": also the id on line 2; ids must be unique`},
		"no values":   {"V1,V2\nH1,\n", `h.csv:2:1: V1: series "H1" has no observations`},
		"not a number": {"V1,V2,V3\nH1,1,abc\n",
			`h.csv:2:6: V3: "abc": want a finite decimal number`},
		"NaN":        {"V1,V2\nH1,NaN\n", `h.csv:2:4: V2: "NaN": want a finite decimal number`},
		"Inf":        {"V1,V2\nH1,1e999\n", `h.csv:2:4: V2: "1e999": want a finite decimal number`},
		"hex":        {"V1,V2\nH1,0x10\n", `h.csv:2:4: V2: "0x10": want a finite decimal number`},
		"spaced":     {"V1,V2\nH1, 5\n", `h.csv:2:4: V2: " 5": want a finite decimal number`},
		"gap":        {"V1,V2,V3,V4\nH1,1,,3\n", `h.csv:2:6: V3: empty, but a value follows at V4: a series has no gaps`},
		"quotes":     {"V1,V2\nH1,\"1\n", `h.csv:2:7: csv: extraneous or missing " in quoted-field`},
		"bare quote": {"V1,V2\nH1,1\"2\n", `h.csv:2:5: csv: bare " in non-quoted-field`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseM4([]byte(tc.in), "h.csv")
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want a *ParseError", err, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n%s\nwant\n%s", err, tc.want)
			}
		})
	}
}

func TestParseM4Accepts(t *testing.T) {
	in := "\ufeff\"V1\",\"V2\",\"V3\",\"V4\"\r\n\"a\",\"1.5\",\"-2e3\",\"\"\r\nb,+3,.5,7.\r\n"
	got, err := ParseM4([]byte(in), "x.csv")
	if err != nil {
		t.Fatal(err)
	}
	want := []Series{{ID: "a", Values: []float64{1.5, -2000}}, {ID: "b", Values: []float64{3, 0.5, 7}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
}

func TestParseSeries(t *testing.T) {
	in := "# demand, accelerator-hours per day\nacme/train/h100,1,2,3\nglobex,4,,\n\n\"a,b\",5\n"
	got, err := ParseSeries([]byte(in), "d.csv")
	if err != nil {
		t.Fatal(err)
	}
	want := []Series{{ID: "acme/train/h100", Values: []float64{1, 2, 3}}, {ID: "globex", Values: []float64{4}}, {ID: "a,b", Values: []float64{5}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}
	errs := map[string]struct{ in, want string }{
		"empty":    {"# nothing\n", `d.csv:1: no series: want lines of an id and then its values`},
		"a header": {"id,v1,v2\nx,1,2\n", `d.csv:1:4: value 1: "v1": want a finite decimal number (a series file has no header: each line is an id, then values)`},
		"only id":  {"x,1\ny\n", `d.csv:2:1: id: series "y" has no observations`},
		"gap":      {"x,1,,2\n", `d.csv:1:5: value 2: empty, but a value follows at value 3: a series has no gaps (a series file has no header: each line is an id, then values)`},
		"twice":    {"x,1\nx,2\n", `d.csv:2:1: id: "x": also the id on line 1; ids must be unique`},
	}
	for name, tc := range errs {
		_, err := ParseSeries([]byte(tc.in), "d.csv")
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: error\n%v\nwant\n%s", name, err, tc.want)
		}
	}
}

// encodeSeries writes series in ParseSeries's layout.
func encodeSeries(ss []Series) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for _, s := range ss {
		rec := []string{s.ID}
		for _, v := range s.Values {
			rec = append(rec, strconv.FormatFloat(v, 'g', -1, 64))
		}
		w.Write(rec)
	}
	w.Flush()
	return buf.Bytes()
}

// checkParsed holds for whatever a reader accepts: unique ids, at least
// one finite value each; and writing the series back and reading them
// again loses nothing.
func checkParsed(t *testing.T, ss []Series, err error) {
	t.Helper()
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line < 1 {
			t.Fatalf("error %v: want a *ParseError with a line", err)
		}
		return
	}
	seen := map[string]bool{}
	for _, s := range ss {
		if s.ID == "" || seen[s.ID] || len(s.Values) == 0 {
			t.Fatalf("accepted series %q with %d values (seen before: %v)", s.ID, len(s.Values), seen[s.ID])
		}
		seen[s.ID] = true
		if err := checkSeries(s.Values); err != nil {
			t.Fatalf("accepted series %q: %v", s.ID, err)
		}
	}
	back, err := ParseSeries(encodeSeries(ss), "again")
	if len(ss) == 0 {
		return
	}
	if err != nil {
		t.Fatalf("written back: %v\n%s", err, encodeSeries(ss))
	}
	if diff := cmp.Diff(ss, back); diff != "" {
		t.Fatalf("written back and read again (-first +again):\n%s", diff)
	}
}

func FuzzParseM4(f *testing.F) {
	sample, err := os.ReadFile(filepath.Join("testdata", "m4-hourly-sample.csv"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample[:2000])
	f.Add([]byte("\"V1\",\"V2\",\"V3\"\n\"H1\",\"1\",\"\"\n\"H2\",\"2\",\"3\"\n"))
	f.Add([]byte("V1,V2\nH1,1e5\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ss, err := ParseM4(data, "f.csv")
		checkParsed(t, ss, err)
	})
}

func FuzzParseSeries(f *testing.F) {
	f.Add([]byte("# c\na,1,2,3\nb,4,,\n"))
	f.Add([]byte("\"x y\",-1.5e-3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ss, err := ParseSeries(data, "f.csv")
		checkParsed(t, ss, err)
	})
}

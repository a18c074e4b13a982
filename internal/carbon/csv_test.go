package carbon

import (
	"bytes"
	"math"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCSVErrors(t *testing.T) {
	tests := map[string]struct {
		in   string
		want string
	}{
		"empty":            {"", "f.csv:1: empty file: want a header such as Time,Carbon Intensity and then one reading a line"},
		"header only":      {"Time,Carbon Intensity\n", "f.csv:2: no readings: want one time and intensity a line after the header"},
		"three columns":    {"Time,A,B\n", "f.csv:1: header: 3 columns: want 2, a time and an intensity (such as Time,Carbon Intensity)"},
		"first not a time": {"When,CI\n", `f.csv:1:1: header: first column "When": want the time, named one of time, timestamp, datetime, date`},
		"second unnamed":   {"Time,\n", "f.csv:1:6: header: second column has no name: want the intensity's, such as Carbon Intensity"},
		"short row":        {"Time,CI\n2020-01-01 00:00:00\n", "f.csv:2: 1 fields: want 2, a time and an intensity"},
		"bad time":         {"Time,CI\n2020-13-01 00:00:00,5\n", `f.csv:2:1: time: "2020-13-01 00:00:00": want a time such as 2020-01-01 00:30:00, 2020-01-01 00:30 or 2020-01-01T00:30:00Z`},
		"bad value":        {"Time,CI\n2020-01-01 00:00:00,abc\n", `f.csv:2:21: intensity: "abc": want a number in 0..5000 gCO2/kWh`},
		"negative":         {"Time,CI\n2020-01-01 00:00:00,-1\n", "f.csv:2:21: intensity: -1: want a number in 0..5000 gCO2/kWh"},
		"too high":         {"Time,CI\n2020-01-01 00:00:00,5000.5\n", "f.csv:2:21: intensity: 5000.5: want a number in 0..5000 gCO2/kWh"},
		"nan":              {"Time,CI\n2020-01-01 00:00:00,NaN\n", "f.csv:2:21: intensity: NaN: want a number in 0..5000 gCO2/kWh"},
		"out of order": {"Time,CI\n2020-01-01 00:30:00,1\n2020-01-01 00:00:00,2\n",
			"f.csv:3:1: time: 2020-01-01 00:00:00 is not after 2020-01-01 00:30:00 on line 2: readings must be in time order, each time once"},
		"twice": {"Time,CI\n2020-01-01 00:30:00,1\n2020-01-01T00:30:00Z,2\n",
			"f.csv:3:1: time: 2020-01-01T00:30:00Z is not after 2020-01-01 00:30:00 on line 2: readings must be in time order, each time once"},
		"gap": {"Time,CI\n2020-01-01 00:00:00,1\n2020-01-02 00:30:00,2\n",
			"f.csv:3:1: time: 2020-01-02 00:30:00 is 24h30m0s after the reading on line 2: at most a day may pass between readings"},
		"bare quote": {"Time,CI\n2020-01-01 00:00:00,1\"\n", `f.csv:2:22: bare " in non-quoted-field`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseCSV([]byte(tc.in), "f.csv")
			if err == nil {
				t.Fatal("parsed; want an error")
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseCSVAccepts(t *testing.T) {
	// A byte order mark, another time column name, every time layout.
	in := "\ufefftimestamp,gCO2/kWh\n2020-01-01 00:00:00,100\n2020-01-01 00:30,150.5\n2020-01-01T02:00:00+01:00,90\n2020-01-01T01:30:00Z,0\n2020-01-01T02:00:00, 7\n"
	got, err := ParseCSV([]byte(in), "f.csv")
	if err != nil {
		t.Fatal(err)
	}
	want := Readings{Times: []int64{1577836800, 1577838600, 1577840400, 1577842200, 1577844000}, Values: []float64{100, 150.5, 90, 0, 7}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("readings (-want +got):\n%s", diff)
	}
}

func TestParseCSVZoneOrder(t *testing.T) {
	// 01:00 at +01:00 is midnight UTC, before the 00:30 reading.
	in := "Time,CI\n2020-01-01 00:30:00,1\n2020-01-01T01:00:00+01:00,2\n"
	if _, err := ParseCSV([]byte(in), "f.csv"); err == nil {
		t.Fatal("parsed a reading out of time order once zones are applied")
	}
}

// The sample is where the series turns from 30-minute to 15-minute
// readings: on a 30-minute grid each step takes the reading on the hour or
// half hour, as "Let's Wait Awhile" samples it.
func TestRegularSamplesTheHalfHour(t *testing.T) {
	data, err := os.ReadFile("testdata/gb-sample.csv")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseCSV(data, "gb-sample.csv")
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Regular(1800)
	if err != nil {
		t.Fatal(err)
	}
	var want []float64
	for i, tm := range r.Times {
		if tm%1800 == 0 {
			want = append(want, r.Values[i])
		}
	}
	if diff := cmp.Diff(want, s.Values); diff != "" {
		t.Errorf("30-minute steps (-want +got):\n%s", diff)
	}
	if s.Start != r.Times[0] || s.Step != 1800 {
		t.Errorf("start %d step %d, want %d 1800", s.Start, s.Step, r.Times[0])
	}
	// On a 15-minute grid the 30-minute part repeats each reading.
	q, err := r.Regular(900)
	if err != nil {
		t.Fatal(err)
	}
	if q.Values[0] != r.Values[0] || q.Values[1] != r.Values[0] || q.Values[2] != r.Values[1] {
		t.Errorf("15-minute grid starts %v, want each 30-minute reading twice", q.Values[:3])
	}
	if q.End() != r.Times[len(r.Times)-1]+900 {
		t.Errorf("15-minute grid ends at %d, want the last reading plus its 15 minutes", q.End())
	}
}

func TestRegularErrors(t *testing.T) {
	r := Readings{Times: []int64{10}, Values: []float64{1}}
	if _, err := r.Regular(0); err == nil {
		t.Error("step 0 accepted")
	}
	if _, err := (Readings{}).Regular(1800); err == nil {
		t.Error("no readings accepted")
	}
	// One reading at 10 holds for one step, to 1810: the grid's first
	// step, 1800, starts before that.
	s, err := r.Regular(1800)
	if err != nil || len(s.Values) != 1 || s.Start != 1800 {
		t.Errorf("one reading: %+v, %v", s, err)
	}
}

func TestFormatRoundTrip(t *testing.T) {
	r := Readings{Times: []int64{1577836800, 1577838600}, Values: []float64{123.456789012345, 0}}
	got, err := ParseCSV(r.FormatCSV(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func FuzzParseCSV(f *testing.F) {
	sample, err := os.ReadFile("testdata/gb-sample.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	f.Add([]byte("Time,CI\n2020-01-01 00:00:00,1\n"))
	f.Add([]byte("date,x\n2020-01-01T00:00:00Z,1e3\n2020-01-01T23:00:00Z,0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseCSV(data, "fuzz.csv")
		if err != nil {
			var pe *ParseError
			if !asParseError(err, &pe) || pe.Line < 1 {
				t.Fatalf("error %v is not a located ParseError", err)
			}
			return
		}
		for i, v := range r.Values {
			if math.IsNaN(v) || v < 0 || v > MaxIntensity {
				t.Fatalf("value %v accepted", v)
			}
			if i > 0 && (r.Times[i] <= r.Times[i-1] || r.Times[i]-r.Times[i-1] > MaxGapSec) {
				t.Fatalf("times %d then %d accepted", r.Times[i-1], r.Times[i])
			}
		}
		// What was read writes back and reads the same.
		again, err := ParseCSV(r.FormatCSV(), "again.csv")
		if err != nil {
			t.Fatalf("written back: %v", err)
		}
		if !cmp.Equal(r, again) || !bytes.Equal(r.FormatCSV(), again.FormatCSV()) {
			t.Fatalf("round trip changed the readings")
		}
		if s, err := r.Regular(1800); err == nil {
			for _, v := range s.Values {
				if v < 0 || v > MaxIntensity {
					t.Fatalf("regular value %v", v)
				}
			}
		}
	})
}

package ledger_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpufleet/gpufleet/internal/ledger"
)

func TestParseCarbonCSV(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "carbon", "gb_ci_2020-12-01_03.csv"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.ParseCarbonCSV("gb.csv", data)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 288 {
		t.Errorf("%d points, want 288", s.Len())
	}
	first, last := s.Span()
	if got, want := ledger.FormatTime(first), "2020-12-01T00:00:00Z"; got != want {
		t.Errorf("first point %s, want %s", got, want)
	}
	if got, want := ledger.FormatTime(last), "2020-12-03T23:45:00Z"; got != want {
		t.Errorf("last point %s, want %s", got, want)
	}
	// Step values hold until the next point, at 1 mg/kWh resolution.
	if got := s.At(first + 14*60_000); got != 190.169 {
		t.Errorf("intensity at 00:14 is %v, want 190.169", got)
	}
	if got := s.At(first + 15*60_000); got != 171.907 {
		t.Errorf("intensity at 00:15 is %v, want 171.907", got)
	}
}

func TestParseCarbonCSVErrors(t *testing.T) {
	const good = "Time,Carbon Intensity\n2020-01-01 00:00:00,180\n2020-01-01 00:30:00,190.5\n"
	tests := map[string]struct{ src, want string }{
		"empty":       {"", `c.csv:1: empty file: want a header such as Time,Carbon Intensity and then one reading a line`},
		"no rows":     {"Time,Carbon Intensity\n", `c.csv:2: no readings: want one time and intensity a line after the header`},
		"no header":   {"2020-01-01 00:00:00,180\n", `c.csv:1:1: header: first column "2020-01-01 00:00:00": want the time, named one of time, timestamp, datetime, date`},
		"columns":     {strings.Replace(good, ",190.5", ",190.5,x", 1), `c.csv:3: 3 fields: want 2, a time and an intensity`},
		"bad time":    {strings.Replace(good, "2020-01-01 00:30:00", "01/01/2020 00:30", 1), `c.csv:3:1: time: "01/01/2020 00:30": want a time such as 2020-01-01 00:30:00, 2020-01-01 00:30 or 2020-01-01T00:30:00Z`},
		"bad value":   {strings.Replace(good, "190.5", "lots", 1), `c.csv:3:21: intensity: "lots": want a number in 0..5000 gCO2/kWh`},
		"negative":    {strings.Replace(good, "190.5", "-1", 1), `c.csv:3:21: intensity: -1: want a number in 0..5000 gCO2/kWh`},
		"nan":         {strings.Replace(good, "190.5", "NaN", 1), `c.csv:3:21: intensity: NaN: want a number in 0..5000 gCO2/kWh`},
		"order":       {good + "2020-01-01 00:15:00,170\n", `c.csv:4:1: time: 2020-01-01 00:15:00 is not after 2020-01-01 00:30:00 on line 3: readings must be in time order, each time once`},
		"duplicate":   {good + "2020-01-01 00:30:00,170\n", `c.csv:4:1: time: 2020-01-01 00:30:00 is not after 2020-01-01 00:30:00 on line 3: readings must be in time order, each time once`},
		"quote":       {good + "\"2020-01-01 01:00:00,170\n", `c.csv:4:26: extraneous or missing " in quoted-field`},
		"header cols": {"Time\n2020-01-01 00:00:00\n", `c.csv:1: header: 1 columns: want 2, a time and an intensity (such as Time,Carbon Intensity)`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ledger.ParseCarbonCSV("c.csv", []byte(tc.src))
			if err == nil {
				t.Fatalf("no error, want %s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
		})
	}
	if _, err := ledger.ParseCarbonCSV("c.csv", []byte(good)); err != nil {
		t.Errorf("good file: %v", err)
	}
}

func FuzzParseCarbonCSV(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "carbon", "gb_ci_2020-12-01_03.csv"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("Time,Carbon Intensity\n2020-01-01T00:00:00Z,1\n2020-01-01T00:00:01+01:00,2\n"))
	f.Add([]byte("a,b\n\"2020-01-01 00:00\",\"3\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ledger.ParseCarbonCSV("fuzz.csv", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// A parsed series is usable: intensities are in range at and
		// around every point.
		first, last := s.Span()
		for _, at := range []int64{first - 1, first, (first + last) / 2, last, last + 1} {
			if v := s.At(at); v < 0 || v > ledger.MaxCarbonGPerKWh {
				t.Fatalf("intensity %v at %d", v, at)
			}
		}
	})
}

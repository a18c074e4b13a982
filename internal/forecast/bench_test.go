package forecast

import (
	"os"
	"path/filepath"
	"testing"
)

func benchSeries(b *testing.B) []Series {
	data, err := os.ReadFile(filepath.Join("testdata", "m4-hourly-sample.csv"))
	if err != nil {
		b.Fatal(err)
	}
	ss, err := ParseM4(data, "sample")
	if err != nil {
		b.Fatal(err)
	}
	return ss
}

// BenchmarkMethod forecasts 48 hours of each of the five sample series
// with each method; one op is one series (the mean over the five).
func BenchmarkMethod(b *testing.B) {
	ss := benchSeries(b)
	o := Options{Horizon: 48, Season: 24}
	for _, m := range Methods() {
		b.Run(m.Name(), func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, err := Run(m, ss[i%len(ss)].Values, o); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkM4Hourly414 forecasts 414 series of the M4 hourly lengths (the
// five samples in turn, 700 or 960 observations) with the default method
// on one goroutine: one op is the whole M4 hourly set.
func BenchmarkM4Hourly414(b *testing.B) {
	ss := benchSeries(b)
	o := Options{Horizon: 48, Season: 24}
	m := Combination()
	for b.Loop() {
		for i := range 414 {
			if _, err := Run(m, ss[i%len(ss)].Values, o); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkParseM4(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "m4-hourly-sample.csv"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ParseM4(data, "sample"); err != nil {
			b.Fatal(err)
		}
	}
}

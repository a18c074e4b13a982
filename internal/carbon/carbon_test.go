package carbon

import (
	"errors"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

func asParseError(err error, pe **ParseError) bool { return errors.As(err, pe) }

func TestSeriesQueries(t *testing.T) {
	s := Series{Start: 1800, Step: 1800, Values: []float64{100, 200, 300}}
	if v, ok := s.At(1800); !ok || v != 100 {
		t.Errorf("At(1800) = %v %v", v, ok)
	}
	if v, ok := s.At(5399); !ok || v != 200 {
		t.Errorf("At(5399) = %v %v", v, ok)
	}
	if _, ok := s.At(7200); ok {
		t.Error("At past the end answered")
	}
	if got, ok := s.Integral(2700, 4500); !ok || got != 100*900+200*900 {
		t.Errorf("Integral(2700, 4500) = %v %v", got, ok)
	}
	if _, ok := s.Integral(0, 3600); ok {
		t.Error("Integral before the start answered")
	}
	if diff := cmp.Diff([]float64{100, 200}, s.Steps(2000, 3601)[:2]); diff != "" {
		t.Errorf("Steps (-want +got):\n%s", diff)
	}
	if got := s.Steps(2000, 99999); len(got) != 3 {
		t.Errorf("Steps past the end: %v, want the 3 the series has", got)
	}
	if got := s.Steps(0, 5000); got != nil {
		t.Errorf("Steps from before the start: %v, want none", got)
	}
	if got := s.Mean(0, 0); got != 200 {
		t.Errorf("Mean of all = %v", got)
	}
	if got := s.Mean(3600, 7200); got != 250 {
		t.Errorf("Mean(3600, 7200) = %v", got)
	}
	if got := s.Slice(3000, 4000); got.Start != 1800 || len(got.Values) != 2 {
		t.Errorf("Slice rounds out: %+v", got)
	}
	c := Constant(380, 1800)
	if v, _ := c.At(-5); v != 380 {
		t.Errorf("constant At = %v", v)
	}
	if got := c.Steps(100, 1801); len(got) != 2 {
		t.Errorf("constant Steps = %v, want 2 steps", got)
	}
}

// The integral is the sum of the intensity second by second.
func TestIntegralProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		step := rapid.Int64Range(1, 7).Draw(t, "step")
		n := rapid.IntRange(1, 6).Draw(t, "n")
		s := Series{Start: step * rapid.Int64Range(-3, 3).Draw(t, "k"), Step: step}
		for range n {
			s.Values = append(s.Values, float64(rapid.IntRange(0, 500).Draw(t, "v")))
		}
		from := rapid.Int64Range(s.Start, s.End()).Draw(t, "from")
		to := rapid.Int64Range(from, s.End()).Draw(t, "to")
		got, ok := s.Integral(from, to)
		want := 0.0
		for x := from; x < to; x++ {
			v, _ := s.At(x)
			want += v
		}
		if !ok || math.Abs(got-want) > 1e-9 {
			t.Fatalf("Integral(%d, %d) = %v %v, want %v", from, to, got, ok, want)
		}
	})
}

func TestNoiseIsSeeded(t *testing.T) {
	s := Series{Start: 0, Step: 1800, Values: make([]float64, 1000)}
	a, b, c := s.WithNoise(10, 1), s.WithNoise(10, 1), s.WithNoise(10, 2)
	if !cmp.Equal(a, b, cmp.AllowUnexported(Series{})) {
		t.Error("same seed, different noise")
	}
	if cmp.Equal(a, c, cmp.AllowUnexported(Series{})) {
		t.Error("different seeds, same noise")
	}
	mean, sq := 0.0, 0.0
	for _, v := range a.Values {
		mean += v
		sq += v * v
	}
	mean /= 1000
	sd := math.Sqrt(sq/1000 - mean*mean)
	if math.Abs(mean) > 1.5 || math.Abs(sd-10) > 1 {
		t.Errorf("noise mean %v sd %v, want about 0 and 10", mean, sd)
	}
}

func TestForecast(t *testing.T) {
	f, err := NewForecast(1800)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Set("gb", Series{Step: 900, Values: []float64{1}}); !errors.Is(err, ErrStep) {
		t.Errorf("a series of another step: %v", err)
	}
	if err := f.Set("gb", Series{Start: 0, Step: 1800, Values: []float64{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]float64{2, 3}, f.Intensity("gb", 1800, 10000)); diff != "" {
		t.Errorf("Intensity (-want +got):\n%s", diff)
	}
	if got := f.Intensity("fr", 0, 1800); got != nil {
		t.Errorf("unknown site: %v", got)
	}
	if _, err := NewForecast(0); err == nil {
		t.Error("step 0 accepted")
	}
}

package forecast

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestMetrics(t *testing.T) {
	actual := []float64{100, 200, 300, 0}
	fc := []float64{110, 180, 300, 0}
	// sMAPE: 200/4 * (10/210 + 20/380 + 0 + 0), the last step 0/0 is perfect.
	wantSMAPE := 50 * (10.0/210 + 20.0/380)
	if got := SMAPE(actual, fc); math.Abs(got-wantSMAPE) > 1e-12 {
		t.Errorf("SMAPE = %v, want %v", got, wantSMAPE)
	}
	history := []float64{1, 2, 4, 8, 3, 4}
	// Lag-2 differences: 3, 6, 1, 4 -> scale 3.5.
	if got := MASEScale(history, 2); got != 3.5 {
		t.Errorf("MASEScale = %v, want 3.5", got)
	}
	// A history no longer than the period falls back to lag 1: 1, 2 -> 1.5.
	if got := MASEScale([]float64{1, 2, 4}, 3); got != 1.5 {
		t.Errorf("MASEScale of a short history = %v, want 1.5", got)
	}
	if got := MASEScale([]float64{5, 5, 5}, 1); got != 0 {
		t.Errorf("MASEScale of a flat history = %v, want 0", got)
	}
	// MAE 30/4 = 7.5, over 3.5.
	if got := MASE(actual, fc, 3.5); math.Abs(got-7.5/3.5) > 1e-12 {
		t.Errorf("MASE = %v, want %v", got, 7.5/3.5)
	}
	if got := MASE(actual, fc, 0); !math.IsNaN(got) {
		t.Errorf("MASE with scale 0 = %v, want NaN", got)
	}
	// 95% interval [90,110] for 100 (inside), [150,190] for 200 (10 above:
	// penalty 2/0.05*10 = 400), [310,320] for 300 (10 below: 400), [0,0] for 0.
	lower := []float64{90, 150, 310, 0}
	upper := []float64{110, 190, 320, 0}
	wantMSIS := (20 + 40 + 400 + 10 + 400 + 0) / 4.0 / 2
	if got := MSIS(actual, lower, upper, 0.95, 2); math.Abs(got-wantMSIS) > 1e-9 {
		t.Errorf("MSIS = %v, want %v", got, wantMSIS)
	}
	if got := OWA(10, 1, 20, 4); got != 0.375 {
		t.Errorf("OWA = %v, want (10/20 + 1/4)/2 = 0.375", got)
	}
}

func TestBacktestScores(t *testing.T) {
	y := series(24*6, func(t int) float64 { return 100*profile(t) + float64(t%7) })
	b := BacktestOptions{Options: Options{Horizon: 24, Season: 24}, Origins: 2, Step: 12}
	scores, err := Backtest(Series{ID: "s", Values: y}, []Method{SeasonalNaive{}, Naive{}}, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(scores) != 4 {
		t.Fatalf("%d scores, want 2 origins x 2 methods", len(scores))
	}
	// Each score is what the method scores from its origin, computed here
	// directly.
	for _, s := range scores {
		end := len(y) - 24 - 12*s.Origin
		m, _ := ByName(s.Method)
		f, _ := Run(m, y[:end], b.Options)
		actual := y[end : end+24]
		scale := MASEScale(y[:end], 24)
		covered := 0
		for i, v := range actual {
			if v >= f.Lower[i] && v <= f.Upper[i] {
				covered++
			}
		}
		want := Score{Series: "s", Method: s.Method, Origin: s.Origin, SMAPE: SMAPE(actual, f.Point),
			MASE: MASE(actual, f.Point, scale), MSIS: MSIS(actual, f.Lower, f.Upper, 0.95, scale), Covered: covered, Points: 24}
		if diff := cmp.Diff(want, s); diff != "" {
			t.Errorf("score (-direct +backtest):\n%s", diff)
		}
	}
	// Origins that leave too little history are skipped, not errors.
	short, err := Backtest(Series{ID: "short", Values: y[:26]}, []Method{Naive{}}, b)
	if err != nil || len(short) != 1 {
		t.Errorf("short series: %d scores, %v; want the one origin that fits", len(short), err)
	}
}

func TestSummarise(t *testing.T) {
	nan := math.NaN()
	scores := []Score{
		{Series: "a", Method: "snaive", SMAPE: 10, MASE: 1, MSIS: 8, Covered: 9, Points: 10},
		{Series: "a", Method: "naive2", SMAPE: 20, MASE: 2, MSIS: 9, Covered: 8, Points: 10},
		{Series: "a", Method: "x", SMAPE: 5, MASE: 0.5, MSIS: 4, Covered: 10, Points: 10},
		{Series: "b", Method: "snaive", SMAPE: 30, MASE: nan, MSIS: nan, Covered: 10, Points: 10},
		{Series: "b", Method: "naive2", SMAPE: 40, MASE: nan, MSIS: nan, Covered: 10, Points: 10},
		{Series: "b", Method: "x", SMAPE: 15, MASE: nan, MSIS: nan, Covered: 5, Points: 10},
	}
	got := Summarise(scores)
	want := []Summary{
		{Method: "snaive", Forecasts: 2, Undefined: 1, SMAPE: 20, MASE: 1, MSIS: 8, OWA: 1, OWANaive2: (20.0/30 + 0.5) / 2, Coverage: 0.95},
		{Method: "naive2", Forecasts: 2, Undefined: 1, SMAPE: 30, MASE: 2, MSIS: 9, OWA: (30.0/20 + 2) / 2, OWANaive2: 1, Coverage: 0.9},
		{Method: "x", Forecasts: 2, Undefined: 1, SMAPE: 10, MASE: 0.5, MSIS: 4, OWA: (0.5 + 0.5) / 2, OWANaive2: (10.0/30 + 0.25) / 2, Coverage: 0.75},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
		t.Errorf("Summarise (-want +got):\n%s", diff)
	}
	// Without the references, OWA is unknown rather than made up.
	alone := Summarise(scores[2:3])
	if !math.IsNaN(alone[0].OWA) || !math.IsNaN(alone[0].OWANaive2) {
		t.Errorf("OWA without references: %v, %v; want NaN", alone[0].OWA, alone[0].OWANaive2)
	}
}

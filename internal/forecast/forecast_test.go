package forecast

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// series builds n observations of f(t).
func series(n int, f func(t int) float64) []float64 {
	y := make([]float64, n)
	for t := range y {
		y[t] = f(t)
	}
	return y
}

// profile is a daily shape of period 24 averaging 1.
func profile(t int) float64 { return 1 + 0.4*math.Sin(2*math.Pi*float64(t%24)/24) }

func approx(tol float64) cmp.Option { return cmpopts.EquateApprox(0, tol) }

func mustRun(t *testing.T, m Method, y []float64, o Options) Forecast {
	t.Helper()
	f, err := Run(m, y, o)
	if err != nil {
		t.Fatalf("%s: %v", m.Name(), err)
	}
	return f
}

func TestConstantSeries(t *testing.T) {
	for _, c := range []float64{5, 0, -3} {
		y := series(100, func(int) float64 { return c })
		o := Options{Horizon: 30, Season: 24}
		want := series(30, func(int) float64 { return max(c, 0) })
		if c < 0 {
			want = series(30, func(int) float64 { return c })
		}
		for _, m := range Methods() {
			f := mustRun(t, m, y, o)
			if diff := cmp.Diff(want, f.Point, approx(1e-9)); diff != "" {
				t.Errorf("%s on constant %g: point (-want +got):\n%s", m.Name(), c, diff)
			}
			// Nothing ever varied, so nothing is uncertain.
			if diff := cmp.Diff(want, f.Lower, approx(1e-9)); diff != "" {
				t.Errorf("%s on constant %g: lower (-want +got):\n%s", m.Name(), c, diff)
			}
			if diff := cmp.Diff(want, f.Upper, approx(1e-9)); diff != "" {
				t.Errorf("%s on constant %g: upper (-want +got):\n%s", m.Name(), c, diff)
			}
		}
	}
}

func TestKnownAnswers(t *testing.T) {
	line := series(100, func(t int) float64 { return 10 + 2*float64(t) })
	const h = 10
	seasonalAdd := series(24*10, func(t int) float64 { return 50 + 10*math.Sin(2*math.Pi*float64(t%24)/24) })
	seasonalMult := series(24*10, func(t int) float64 { return 200 * profile(t) })
	ahead := func(n int, f func(t int) float64) []float64 {
		return series(h, func(i int) float64 { return f(n + i) })
	}
	tests := map[string]struct {
		m    Method
		y    []float64
		o    Options
		want []float64
		tol  float64
	}{
		"naive on a line: the last value": {Naive{}, line, Options{Horizon: h}, ahead(0, func(int) float64 { return 208 }), 1e-12},
		"seasonal naive without a season is naive": {SeasonalNaive{}, line, Options{Horizon: h, Season: 1},
			ahead(0, func(int) float64 { return 208 }), 1e-12},
		// Hyndman and Billah: Theta is SES with half the trend as drift; on
		// a line SES tracks the last value.
		"theta on a line: the last value plus half the slope per step": {Theta{}, line, Options{Horizon: h},
			ahead(0, func(i int) float64 { return 208 + float64(i+1) }), 1e-3},
		"seasonal naive on a pure cycle repeats it": {SeasonalNaive{}, seasonalAdd, Options{Horizon: h, Season: 24},
			ahead(240, func(t int) float64 { return seasonalAdd[t%24] }), 1e-12},
		"additive Holt-Winters on a pure additive cycle": {HoltWinters{Seasonality: Additive}, seasonalAdd, Options{Horizon: h, Season: 24},
			ahead(240, func(t int) float64 { return seasonalAdd[t%24] }), 1e-9},
		"multiplicative Holt-Winters on a pure multiplicative cycle": {HoltWinters{Seasonality: Multiplicative}, seasonalMult, Options{Horizon: h, Season: 24},
			ahead(240, func(t int) float64 { return seasonalMult[t%24] }), 1e-9},
		"naive2 on a pure multiplicative cycle": {Naive2{}, seasonalMult, Options{Horizon: h, Season: 24},
			ahead(240, func(t int) float64 { return seasonalMult[t%24] }), 1e-9},
		"theta on a pure multiplicative cycle": {Theta{}, seasonalMult, Options{Horizon: h, Season: 24},
			ahead(240, func(t int) float64 { return seasonalMult[t%24] }), 1e-9},
		"the combination on a pure multiplicative cycle": {Combination(), seasonalMult, Options{Horizon: h, Season: 24},
			ahead(240, func(t int) float64 { return seasonalMult[t%24] }), 1e-9},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			f := mustRun(t, tc.m, tc.y, tc.o)
			if diff := cmp.Diff(tc.want, f.Point, approx(tc.tol)); diff != "" {
				t.Errorf("point (-want +got):\n%s\nmodel: %s", diff, f.Model)
			}
		})
	}
}

// TestTrendAndMultiplicativeSeason: demand that grows with a daily cycle
// whose swing grows with it. The damped models cannot follow a trend
// forever, but over two days they must stay close and beat seasonal
// naive, which lags a day behind the growth.
func TestTrendAndMultiplicativeSeason(t *testing.T) {
	truth := func(t int) float64 { return (100 + 0.5*float64(t)) * profile(t) }
	const n, h = 24 * 12, 48
	y := series(n, truth)
	actual := series(h, func(i int) float64 { return truth(n + i) })
	o := Options{Horizon: h, Season: 24}
	naive := SMAPE(actual, mustRun(t, SeasonalNaive{}, y, o).Point)
	for _, m := range []Method{HoltWinters{Seasonality: Multiplicative}, Combination()} {
		f := mustRun(t, m, y, o)
		got := SMAPE(actual, f.Point)
		if got > naive/3 {
			t.Errorf("%s: sMAPE %.3f, want below a third of seasonal naive's %.3f\nmodel: %s", m.Name(), got, naive, f.Model)
		}
	}
	f := mustRun(t, HoltWinters{Seasonality: Multiplicative}, y, o)
	if !strings.HasPrefix(f.Model, "ETS(A,Ad,M)") {
		t.Errorf("model %q: want ETS(A,Ad,M)", f.Model)
	}
}

// TestHoltWintersRecursion checks the error-correction recursions that
// the fit runs against the textbook component form of Holt-Winters with
// a damped trend (Hyndman et al. 2008, Table 2.1), written out here
// independently, for fixed parameters and initial states.
func TestHoltWintersRecursion(t *testing.T) {
	y := []float64{12, 15, 11, 9, 13, 17, 12, 10, 14, 18, 13, 11}
	const m, alpha, betaStar, gamma, phi = 4, 0.3, 0.2, 0.25, 0.9
	init := []float64{1.1, 1.3, 0.9, 0.7}
	for _, mult := range []bool{false, true} {
		seasonInit := init
		if !mult {
			seasonInit = []float64{1, 3, -1, -3}
		}
		mod := &hwModel{m: m, mult: mult, alpha: alpha, beta: alpha * betaStar, gamma: gamma, phi: phi,
			initLevel: 12, initTrend: 0.5, initSeason: seasonInit, horizon: 1, every: 1}
		mod.run(y, newHWScratch(m, 1), true)
		got := mod.project(len(y), Options{Horizon: 6}).Point

		l, b := 12.0, 0.5
		s := append([]float64(nil), seasonInit...)
		for t, v := range y {
			prevL, prevB, prevS := l, b, s[t%m]
			if mult {
				l = alpha*(v/prevS) + (1-alpha)*(prevL+phi*prevB)
				s[t%m] = gamma*(v/(prevL+phi*prevB)) + (1-gamma)*prevS
			} else {
				l = alpha*(v-prevS) + (1-alpha)*(prevL+phi*prevB)
				s[t%m] = gamma*(v-prevL-phi*prevB) + (1-gamma)*prevS
			}
			b = betaStar*(l-prevL) + (1-betaStar)*phi*prevB
		}
		var want []float64
		phiSum := 0.0
		for k := 1; k <= 6; k++ {
			phiSum += math.Pow(phi, float64(k))
			if mult {
				want = append(want, (l+phiSum*b)*s[(len(y)+k-1)%m])
			} else {
				want = append(want, l+phiSum*b+s[(len(y)+k-1)%m])
			}
		}
		if diff := cmp.Diff(want, got, approx(1e-12)); diff != "" {
			t.Errorf("mult=%v: forecasts (-component form +error-correction form):\n%s", mult, diff)
		}
	}
}

func TestDegenerateSeries(t *testing.T) {
	o := Options{Horizon: 5, Season: 24}
	tests := map[string][]float64{
		"one observation":        {7},
		"two observations":       {7, 9},
		"shorter than a cycle":   series(20, func(t int) float64 { return float64(t) }),
		"shorter than 3 cycles":  series(60, func(t int) float64 { return 100 * profile(t) }),
		"zeros":                  make([]float64, 100),
		"negative values":        series(200, func(t int) float64 { return 10*profile(t) - 12 }),
		"a spike in zeros":       series(200, func(t int) float64 { return float64(boolToInt(t == 150)) * 1e6 }),
		"huge values":            series(200, func(t int) float64 { return 1e300 * profile(t) }),
		"tiny values":            series(200, func(t int) float64 { return 1e-300 * profile(t) }),
		"zero crossing seasonal": series(200, func(t int) float64 { return math.Sin(2 * math.Pi * float64(t) / 24) }),
	}
	for name, y := range tests {
		t.Run(name, func(t *testing.T) {
			for _, m := range Methods() {
				f := mustRun(t, m, y, o)
				for i := range f.Point {
					if !finite(f.Point[i]) || !finite(f.Lower[i]) || !finite(f.Upper[i]) ||
						f.Lower[i] > f.Point[i] || f.Point[i] > f.Upper[i] {
						t.Fatalf("%s step %d: %g in [%g, %g]; model %s", m.Name(), i, f.Point[i], f.Lower[i], f.Upper[i], f.Model)
					}
				}
			}
		})
	}
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func TestMultiplicativeFallsBackOnNonPositiveData(t *testing.T) {
	y := series(24*6, func(t int) float64 { return 10*profile(t) - 5 })
	y[30] = -1
	f := mustRun(t, HoltWinters{Seasonality: Multiplicative}, y, Options{Horizon: 3, Season: 24})
	if !strings.HasPrefix(f.Model, "ETS(A,Ad,A)") || !strings.Contains(f.Model, "at or below zero") {
		t.Errorf("model %q: want the additive fallback, saying why", f.Model)
	}
}

func TestNotSeasonalSaysSo(t *testing.T) {
	y := series(24*6, func(t int) float64 { return float64(t % 7) })
	f := mustRun(t, HoltWinters{Seasonality: Additive}, y, Options{Horizon: 3, Season: 24})
	if want := "ETS(A,Ad,N)"; !strings.HasPrefix(f.Model, want) || !strings.Contains(f.Model, "not seasonal at period 24") {
		t.Errorf("model %q: want %s, not seasonal at period 24", f.Model, want)
	}
	f = mustRun(t, Combination(), y, Options{Horizon: 3, Season: 24})
	if !strings.Contains(f.Model, "theta:") {
		t.Errorf("combination of a series without seasonality: %q, want Theta among the members", f.Model)
	}
}

func TestFloorAtZero(t *testing.T) {
	// Falling fast towards zero: a trend would forecast negative demand.
	y := series(50, func(t int) float64 { return 100 - 2*float64(t) })
	for _, m := range Methods() {
		f := mustRun(t, m, y, Options{Horizon: 60})
		for i := range f.Point {
			if f.Point[i] < 0 || f.Lower[i] < 0 {
				t.Fatalf("%s step %d: point %g, lower %g: want no negative forecast of a non-negative series", m.Name(), i, f.Point[i], f.Lower[i])
			}
		}
	}
}

func TestRunErrors(t *testing.T) {
	y := []float64{1, 2, 3}
	tests := map[string]struct {
		y    []float64
		o    Options
		want string
	}{
		"no horizon":    {y, Options{}, "horizon 0: want 1..100000"},
		"season < 0":    {y, Options{Horizon: 1, Season: -1}, "season -1: want 0..100000 (0 or 1: not seasonal)"},
		"level 1":       {y, Options{Horizon: 1, Level: 1}, "level 1: want a coverage in (0, 1), such as 0.95"},
		"level percent": {y, Options{Horizon: 1, Level: 95}, "level 95: want a coverage in (0, 1), such as 0.95"},
		"empty":         {nil, Options{Horizon: 1}, "series has no observations"},
		"NaN":           {[]float64{1, math.NaN()}, Options{Horizon: 1}, "observation 2 is NaN: want a finite number"},
		"Inf":           {[]float64{math.Inf(-1)}, Options{Horizon: 1}, "observation 1 is -Inf: want a finite number"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Run(Naive{}, tc.y, tc.o)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Run(Naive{}, nil, Options{Horizon: 1}); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty series: %v, want ErrEmpty", err)
	}
}

func TestByName(t *testing.T) {
	for _, name := range Names() {
		m, err := ByName(name)
		if err != nil || m.Name() != name {
			t.Errorf("ByName(%q) = %v, %v", name, m, err)
		}
	}
	m, err := ByName("theta+snaive")
	if err != nil || m.Name() != "theta+snaive" {
		t.Fatalf("ByName(theta+snaive) = %v, %v", m, err)
	}
	_, err = ByName("arima")
	want := `method "arima": want one of comb, snaive, naive, naive2, ses, hw-additive, hw-multiplicative, theta, or several joined by '+'`
	if err == nil || err.Error() != want {
		t.Errorf("ByName(arima): %v, want %s", err, want)
	}
	if _, err := ByName("theta+"); err == nil {
		t.Error(`ByName("theta+"): no error`)
	}
	if Names()[0] != NameDefault {
		t.Errorf("Names()[0] = %s, want the default %s first", Names()[0], NameDefault)
	}
}

func TestComboIsTheMeanOfItsMembers(t *testing.T) {
	y := series(24*8, func(t int) float64 { return 100*profile(t) + float64(t%5) })
	o := Options{Horizon: 30, Season: 24}
	members := []Method{Theta{}, SeasonalNaive{}, HoltWinters{Seasonality: Additive}}
	got := mustRun(t, Combo{Members: members}, y, o)
	want := newForecast(o.Horizon, "")
	for _, m := range members {
		f, _ := m.Forecast(y, o) // the mean is floored at zero, not the members
		for i := range want.Point {
			want.Point[i] += f.Point[i] / 3
			want.Lower[i] += f.Lower[i] / 3
			want.Upper[i] += f.Upper[i] / 3
		}
	}
	for _, p := range []struct {
		name      string
		want, got []float64
	}{{"point", want.Point, got.Point}, {"lower", want.Lower, got.Lower}, {"upper", want.Upper, got.Upper}} {
		if diff := cmp.Diff(p.want, p.got, approx(1e-12)); diff != "" {
			t.Errorf("%s (-mean of members +combination):\n%s", p.name, diff)
		}
	}
}

func TestSeasonalTest(t *testing.T) {
	tests := map[string]struct {
		y    []float64
		m    int
		want bool
	}{
		"a daily cycle":             {series(24*5, profile), 24, true},
		"the same, too short":       {series(24*3-1, profile), 24, false},
		"period 1":                  {series(24*5, profile), 1, false},
		"constant":                  {series(24*5, func(int) float64 { return 3 }), 24, false},
		"a cycle of 7 at period 24": {series(24*5, func(t int) float64 { return float64(t % 7) }), 24, false},
		"a cycle of 7 at period 7":  {series(24*5, func(t int) float64 { return float64(t % 7) }), 7, true},
		"alternating at period 2":   {series(30, func(t int) float64 { return float64(t % 2) }), 2, true},
	}
	for name, tc := range tests {
		if got := Seasonal(tc.y, tc.m); got != tc.want {
			t.Errorf("%s: Seasonal = %v, want %v", name, got, tc.want)
		}
	}
}

package forecast

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestScenarios runs the scenario files of testdata/scenarios: series
// (inline, or loaded from testdata), forecasts and backtests, with their
// printed results; -rewrite regenerates the expected output.
//
//	load file=NAME               read an M4 file from testdata
//	series id=ID                 define a series from the input's numbers
//	forecast id=ID [method=comb] [horizon=N] [season=24] [level=0.95]
//	backtest [methods=a,b] [horizon=N] [season=24] [origins=1]
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, filepath.Join("testdata", "scenarios"), func(t *testing.T, path string) {
		var all []Series
		byID := map[string][]float64{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			arg := func(key, def string) string {
				for _, a := range d.CmdArgs {
					if a.Key == key {
						return strings.Join(a.Vals, ",")
					}
				}
				return def
			}
			num := func(key, def string) float64 {
				v, err := strconv.ParseFloat(arg(key, def), 64)
				if err != nil {
					d.Fatalf(t, "%s: %v", key, err)
				}
				return v
			}
			opts := func() Options {
				return Options{Horizon: int(num("horizon", "48")), Season: int(num("season", "24")), Level: num("level", "0.95")}
			}
			switch d.Cmd {
			case "load":
				data, err := os.ReadFile(filepath.Join("testdata", arg("file", "")))
				if err != nil {
					d.Fatalf(t, "%v", err)
				}
				ss, err := ParseM4(data, arg("file", ""))
				if err != nil {
					return "error: " + err.Error()
				}
				var b strings.Builder
				for _, s := range ss {
					all = append(all, s)
					byID[s.ID] = s.Values
					fmt.Fprintf(&b, "%s: %d observations, seasonal at 24: %v\n", s.ID, len(s.Values), Seasonal(s.Values, 24))
				}
				return b.String()
			case "series":
				var y []float64
				for _, f := range strings.FieldsFunc(d.Input, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
					v, err := strconv.ParseFloat(f, 64)
					if err != nil {
						d.Fatalf(t, "%v", err)
					}
					y = append(y, v)
				}
				id := arg("id", "")
				all = append(all, Series{ID: id, Values: y})
				byID[id] = y
				return fmt.Sprintf("%s: %d observations\n", id, len(y))
			case "forecast":
				m, err := ByName(arg("method", NameDefault))
				if err != nil {
					return "error: " + err.Error()
				}
				f, err := Run(m, byID[arg("id", "")], opts())
				if err != nil {
					return "error: " + err.Error()
				}
				var b strings.Builder
				fmt.Fprintf(&b, "%s\n", strings.ReplaceAll(f.Model, "; ", ";\n  "))
				fmt.Fprintf(&b, "step  point  lower  upper\n")
				for i := range f.Point {
					fmt.Fprintf(&b, "%d  %.4g  %.4g  %.4g\n", i+1, f.Point[i], f.Lower[i], f.Upper[i])
				}
				return b.String()
			case "backtest":
				names := strings.Split(arg("methods", strings.Join(Names(), ",")), ",")
				var methods []Method
				for _, n := range names {
					m, err := ByName(n)
					if err != nil {
						return "error: " + err.Error()
					}
					methods = append(methods, m)
				}
				b := BacktestOptions{Options: opts(), Origins: int(num("origins", "1"))}
				var scores []Score
				for _, s := range all {
					sc, err := Backtest(s, methods, b)
					if err != nil {
						return "error: " + err.Error()
					}
					scores = append(scores, sc...)
				}
				var out strings.Builder
				fmt.Fprintf(&out, "method  forecasts  sMAPE  MASE  OWA(snaive)  OWA(naive2)  coverage%%\n")
				for _, s := range Summarise(scores) {
					fmt.Fprintf(&out, "%s  %d  %.3f  %.3f  %.3f  %.3f  %.1f\n", s.Method, s.Forecasts, s.SMAPE, s.MASE, s.OWA, s.OWANaive2, 100*s.Coverage)
				}
				return out.String()
			}
			d.Fatalf(t, "unknown command %s", d.Cmd)
			return ""
		})
	})
}

package cli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/forecast"
)

// planSubcommands are the commands of the planning group; plan files add to it.
var planSubcommands []func() *cobra.Command

func init() {
	planSubcommands = append(planSubcommands, newPlanForecastCmd)
	addCommand(func() *cobra.Command {
		c := newPlanCmd()
		for _, f := range planSubcommands {
			c.AddCommand(f())
		}
		return c
	})
}

type planForecastOpts struct {
	m4File, seriesFile string
	horizon, season    int
	method             string
	level              float64
	output             string
	backtest           bool
	origins, step      int
}

func newPlanForecastCmd() *cobra.Command {
	var o planForecastOpts
	c := &cobra.Command{
		Use:   "forecast (--m4 FILE | --series FILE)",
		Short: "Forecast regular series, or backtest the forecasting methods on them",
		Long: `forecast predicts each series of a file --horizon steps past its end, with
prediction intervals, by --method. The default, comb, is the equal-weight
mean of damped Holt-Winters with additive and with multiplicative
seasonality for a series that is seasonal at --season, and of the damped
trend model and Theta for one that is not. docs/PLANNING.md describes the
methods.

The series come from --m4 FILE, the M4 competition's CSV layout (a header
"V1","V2",..., then one series a line: its id, its observations, empty
padding), or --series FILE: one series a line, its id then its values, no
header ('#' starts a comment). --season is the number of steps in one
seasonal cycle (24 for hourly data with a daily cycle, 7 for daily data with
a weekly one; 1 for none).

-o csv writes one line per series: its id, then the point forecasts (a
series file, which --series reads back). -o json writes one object with
every series' forecasts, intervals and fitted model.

--backtest instead holds back the last --horizon observations of every
series (and, with --origins K, K origins --step apart), forecasts them with
every method (or --method and the references) and prints the M4 measures:
mean sMAPE, MASE (scaled by seasonal differences at --season), OWA against
seasonal naive and against M4's Naive2, MSIS, and the share of the held-back
values inside the intervals.`,
		Example: `  gpufleet plan forecast --m4 Hourly-train.csv --horizon 48 -o csv > forecasts.csv
  gpufleet plan forecast --m4 Hourly-train.csv --horizon 48 --backtest
  gpufleet plan forecast --series demand.csv --season 7 --horizon 28 --method theta -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return planForecast(cmd, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.m4File, "m4", "", "series `FILE` in the M4 competition's CSV layout")
	f.StringVar(&o.seriesFile, "series", "", "series `FILE`: one series a line, an id then its values")
	f.IntVar(&o.horizon, "horizon", 48, "steps ahead to forecast")
	f.IntVar(&o.season, "season", 24, "steps in one seasonal cycle; 1 for none")
	f.StringVar(&o.method, "method", forecast.NameDefault, "forecasting method, one of "+fmt.Sprint(forecast.Names())+", or several joined by '+' for their mean")
	f.Float64Var(&o.level, "level", 95, "coverage of the prediction intervals, in percent")
	f.StringVarP(&o.output, "output", "o", "csv", "output format: csv or json (with --backtest: table, csv or json)")
	f.BoolVar(&o.backtest, "backtest", false, "backtest on the series' last --horizon observations instead of forecasting")
	f.IntVar(&o.origins, "origins", 1, "with --backtest: forecast origins per series")
	f.IntVar(&o.step, "step", 0, "with --backtest: steps between origins (default --horizon)")
	return c
}

func planForecast(cmd *cobra.Command, o planForecastOpts) error {
	fl := cmd.Flags()
	if (o.m4File == "") == (o.seriesFile == "") {
		return fmt.Errorf("give the series as --m4 FILE or --series FILE (one of them)")
	}
	if !fl.Changed("output") && o.backtest {
		o.output = "table"
	}
	switch {
	case o.backtest && o.output != "table" && o.output != "csv" && o.output != "json":
		return fmt.Errorf("-o %q: with --backtest want table, csv or json", o.output)
	case !o.backtest && o.output != "csv" && o.output != "json":
		return fmt.Errorf("-o %q: want csv or json", o.output)
	case !(o.level >= 1 && o.level < 100):
		return fmt.Errorf("--level %g: want a coverage in percent, at least 1 and below 100 (95, not 0.95)", o.level)
	case !o.backtest && (fl.Changed("origins") || fl.Changed("step")):
		return fmt.Errorf("--origins and --step go with --backtest")
	case o.origins < 1:
		return fmt.Errorf("--origins %d: want 1 or more", o.origins)
	case o.step < 0:
		return fmt.Errorf("--step %d: want 1 or more (0: --horizon)", o.step)
	}
	method, err := forecast.ByName(o.method)
	if err != nil {
		return fmt.Errorf("--method: %w", err)
	}
	opts := forecast.Options{Horizon: o.horizon, Season: o.season, Level: o.level / 100}
	if err := checkPlanOptions(opts); err != nil {
		return err
	}
	series, err := loadSeries(o)
	if err != nil {
		return err
	}
	if o.backtest {
		methods := forecast.Methods()
		if fl.Changed("method") {
			methods = []forecast.Method{method}
			for _, ref := range []string{forecast.NameSeasonalNaive, forecast.NameNaive2} {
				if method.Name() != ref {
					m, _ := forecast.ByName(ref)
					methods = append(methods, m)
				}
			}
		}
		return planBacktest(cmd.OutOrStdout(), series, methods, forecast.BacktestOptions{Options: opts, Origins: o.origins, Step: o.step}, o.output)
	}
	fcs := make([]forecast.Forecast, len(series))
	err = parallel(len(series), func(i int) error {
		f, err := forecast.Run(method, series[i].Values, opts)
		if err != nil {
			return fmt.Errorf("series %s: %w", series[i].ID, err)
		}
		fcs[i] = f
		return nil
	})
	if err != nil {
		return err
	}
	if o.output == "json" {
		return writeForecastJSON(cmd.OutOrStdout(), series, fcs, method.Name(), opts)
	}
	return writeForecastCSV(cmd.OutOrStdout(), series, fcs)
}

// checkPlanOptions reports bad options in the command line's terms.
func checkPlanOptions(o forecast.Options) error {
	if o.Horizon < 1 || o.Horizon > forecast.MaxHorizon {
		return fmt.Errorf("--horizon %d: want 1..%d", o.Horizon, forecast.MaxHorizon)
	}
	if o.Season < 1 || o.Season > forecast.MaxSeason {
		return fmt.Errorf("--season %d: want 1..%d (1: not seasonal)", o.Season, forecast.MaxSeason)
	}
	return nil
}

func loadSeries(o planForecastOpts) ([]forecast.Series, error) {
	path, parse := o.m4File, forecast.ParseM4
	if o.seriesFile != "" {
		path, parse = o.seriesFile, forecast.ParseSeries
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(data, path)
}

// parallel runs f(0..n-1) on as many goroutines as the process may use and
// returns the first error by index, so the result does not depend on
// which goroutine finished first.
func parallel(n int, f func(i int) error) error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := range next {
				errs[i] = f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func writeForecastCSV(w io.Writer, series []forecast.Series, fcs []forecast.Forecast) error {
	cw := csv.NewWriter(w)
	for i, s := range series {
		rec := make([]string, 0, len(fcs[i].Point)+1)
		rec = append(rec, s.ID)
		for _, v := range fcs[i].Point {
			rec = append(rec, formatFloat(v))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

type forecastJSON struct {
	Method  string               `json:"method"`
	Horizon int                  `json:"horizon"`
	Season  int                  `json:"season"`
	Level   float64              `json:"level"`
	Series  []seriesForecastJSON `json:"series"`
}

type seriesForecastJSON struct {
	ID           string    `json:"id"`
	Observations int       `json:"observations"`
	Model        string    `json:"model"`
	Point        []float64 `json:"point"`
	Lower        []float64 `json:"lower"`
	Upper        []float64 `json:"upper"`
}

func writeForecastJSON(w io.Writer, series []forecast.Series, fcs []forecast.Forecast, method string, o forecast.Options) error {
	out := forecastJSON{Method: method, Horizon: o.Horizon, Season: o.Season, Level: o.Level}
	for i, s := range series {
		f := fcs[i]
		out.Series = append(out.Series, seriesForecastJSON{ID: s.ID, Observations: len(s.Values), Model: f.Model,
			Point: f.Point, Lower: f.Lower, Upper: f.Upper})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func planBacktest(w io.Writer, series []forecast.Series, methods []forecast.Method, b forecast.BacktestOptions, output string) error {
	per := make([][]forecast.Score, len(series))
	err := parallel(len(series), func(i int) error {
		s, err := forecast.Backtest(series[i], methods, b)
		per[i] = s
		return err
	})
	if err != nil {
		return err
	}
	var scores []forecast.Score
	for _, s := range per {
		scores = append(scores, s...)
	}
	if len(scores) == 0 {
		return fmt.Errorf("no series has more than %d observations: nothing to backtest with --horizon %d", b.Horizon+forecast.MinHistory-1, b.Horizon)
	}
	sum := forecast.Summarise(scores)
	switch output {
	case "json":
		return writeBacktestJSON(w, sum, b)
	case "csv":
		return writeBacktestCSV(w, sum)
	}
	step := b.Step
	if step == 0 {
		step = b.Horizon
	}
	fmt.Fprintf(w, "backtest: %d series, %d origin(s) %d apart, horizon %d, season %d, %g%% intervals\n",
		len(series), b.Origins, step, b.Horizon, b.Season, b.Level*100)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\tforecasts\tsMAPE\tMASE\tOWA(snaive)\tOWA(naive2)\tcoverage%\tMSIS\t")
	for _, s := range sum {
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%s\t%s\t%.1f\t%.3f\t\n", s.Method, s.Forecasts, s.SMAPE, s.MASE,
			fmtOWA(s.OWA), fmtOWA(s.OWANaive2), 100*s.Coverage, s.MSIS)
	}
	return tw.Flush()
}

func fmtOWA(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.3f", v)
}

type backtestJSON struct {
	Horizon int                  `json:"horizon"`
	Season  int                  `json:"season"`
	Level   float64              `json:"level"`
	Origins int                  `json:"origins"`
	Methods []backtestMethodJSON `json:"methods"`
}

type backtestMethodJSON struct {
	Method    string   `json:"method"`
	Forecasts int      `json:"forecasts"`
	Undefined int      `json:"mase_undefined"`
	SMAPE     float64  `json:"smape"`
	MASE      float64  `json:"mase"`
	OWA       *float64 `json:"owa_snaive"`
	OWANaive2 *float64 `json:"owa_naive2"`
	Coverage  float64  `json:"coverage"`
	MSIS      float64  `json:"msis"`
}

func nanNil(v float64) *float64 {
	if math.IsNaN(v) {
		return nil
	}
	return &v
}

func writeBacktestJSON(w io.Writer, sum []forecast.Summary, b forecast.BacktestOptions) error {
	out := backtestJSON{Horizon: b.Horizon, Season: b.Season, Level: b.Level, Origins: b.Origins}
	for _, s := range sum {
		out.Methods = append(out.Methods, backtestMethodJSON{Method: s.Method, Forecasts: s.Forecasts, Undefined: s.Undefined,
			SMAPE: s.SMAPE, MASE: s.MASE, OWA: nanNil(s.OWA), OWANaive2: nanNil(s.OWANaive2), Coverage: s.Coverage, MSIS: s.MSIS})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeBacktestCSV(w io.Writer, sum []forecast.Summary) error {
	opt := func(v float64) string {
		if math.IsNaN(v) {
			return ""
		}
		return formatFloat(v)
	}
	rows := [][]string{{"method", "forecasts", "smape", "mase", "owa_snaive", "owa_naive2", "coverage", "msis"}}
	for _, s := range sum {
		rows = append(rows, []string{s.Method, strconv.Itoa(s.Forecasts), formatFloat(s.SMAPE), formatFloat(s.MASE),
			opt(s.OWA), opt(s.OWANaive2), formatFloat(s.Coverage), formatFloat(s.MSIS)})
	}
	return csv.NewWriter(w).WriteAll(rows)
}

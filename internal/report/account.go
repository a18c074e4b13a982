package report

import (
	"fmt"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"

	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/sim"
)

// The accounting of a run: per tenant cost, credits, energy and carbon,
// and each prepaid tenant's credit burn-down.

func acctMoney(m ledger.Money, digits int) string {
	return m.Format(ledger.Currency{Code: "XXX", MinorDigits: digits})
}

// accountText writes the accounting part of the summary.
func accountText(p func(string, ...any), a *sim.AccountResult) {
	if a == nil {
		return
	}
	d := a.MinorDigits
	p("\n%-14s %12s %10s %9s %12s %12s %12s %12s\n", "tenant", "accel-h", "kWh", "kg CO2e", "cost "+a.Currency, "commitments", "credits", "billed")
	for _, t := range a.Tenants {
		p("%-14s %12.0f %10.0f %9.0f %12s %12s %12s %12s\n", t.Tenant, t.AccelHours, t.EnergyKWh, t.CO2Kg, acctMoney(t.Cost, d),
			acctMoney(t.Commitments, d), acctMoney(t.Credits, d), acctMoney(t.Billed, d))
	}
	for _, t := range a.Tenants {
		if !t.Prepaid {
			continue
		}
		out := "never ran out"
		if t.RanOutAt >= 0 {
			out = "ran out at " + time.Unix(a.EpochSec+t.RanOutAt, 0).UTC().Format(time.RFC3339)
		}
		paused := ""
		if t.PausedSec > 0 {
			paused = fmt.Sprintf(", paused %s", Duration(float64(t.PausedSec)))
		}
		p("credits       %s: %s granted, %s left; %s%s\n", t.Tenant, acctMoney(t.Granted, d), acctMoney(t.CreditsLeft, d), out, paused)
	}
	p("accounting    %d usage records; energy %.0f kWh metered + %.0f kWh idle devices; %.0f kg CO2e; fleet asset cost %s %s\n",
		a.Records, a.MeteredEnergyKWh, a.IdleEnergyKWh, a.CO2Kg, acctMoney(a.FleetCost, d), a.Currency)
}

// burnDownChart draws each prepaid tenant's spendable credit over time.
func burnDownChart(res *sim.Result) (*plot.Plot, error) {
	a := res.Summary.Accounting
	if a == nil || len(a.BurnDown) == 0 {
		return nil, nil
	}
	label, scale := timeAxis(res)
	p := newPlot("Credit burn-down, by tenant", label, "credits left ("+a.Currency+")")
	p.Y.Min = 0
	lines := map[string]plotter.XYs{}
	var order []string
	for _, b := range a.BurnDown {
		if _, ok := lines[b.Tenant]; !ok {
			order = append(order, b.Tenant)
		}
		lines[b.Tenant] = append(lines[b.Tenant], plotter.XY{X: float64(b.T-res.Summary.Start) / scale, Y: float64(b.Credits) / ledger.Micro})
	}
	for i, t := range order {
		xys := lines[t]
		if per := (len(xys) + maxPoints - 1) / maxPoints; per > 1 {
			var thin plotter.XYs
			for k := 0; k < len(xys); k += per {
				thin = append(thin, xys[k])
			}
			xys = append(thin, xys[len(xys)-1])
		}
		if err := addLine(p, t, xys, i); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// accountHTML is the accounting section of the HTML page.
func accountHTML(a *sim.AccountResult) string {
	if a == nil {
		return ""
	}
	var b strings.Builder
	d := a.MinorDigits
	fmt.Fprintf(&b, "<h2>Accounting</h2>\n<table>\n<tr><th>tenant</th><th>accelerator-hours</th><th>energy (kWh)</th><th>kg CO2e</th><th>cost (%s)</th><th>commitments</th><th>credits applied</th><th>billed</th><th>credits left</th></tr>\n", a.Currency)
	for _, t := range a.Tenants {
		left := "-"
		if t.Prepaid {
			left = acctMoney(t.CreditsLeft, d)
		}
		fmt.Fprintf(&b, "<tr><td>%s</td><td>%.0f</td><td>%.0f</td><td>%.0f</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
			htmlEscape(t.Tenant), t.AccelHours, t.EnergyKWh, t.CO2Kg, acctMoney(t.Cost, d), acctMoney(t.Commitments, d), acctMoney(t.Credits, d), acctMoney(t.Billed, d), left)
	}
	fmt.Fprintf(&b, "</table>\n<p>%d usage records metered; energy %.0f kWh of the records and %.0f kWh of idle devices; fleet asset cost %s %s.</p>\n",
		a.Records, a.MeteredEnergyKWh, a.IdleEnergyKWh, acctMoney(a.FleetCost, d), a.Currency)
	return b.String()
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;").Replace(s)
}

package ledger_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/gpufleet/gpufleet/internal/ledger"
)

// TestScenarios runs the scenario files under testdata/scenarios: a price
// table and sites, commitments, grants and budgets, usage records and
// samples fed in an order, and the reports, invoices, standings and events
// expected. Regenerate with -rewrite and review the diff.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, filepath.Join("testdata", "scenarios"), func(t *testing.T, path string) {
		s := &scenario{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := s.run(d)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
}

type scenario struct {
	l     *ledger.Ledger
	sites []string
}

// at reads a time: 2026-12-01, 2026-12-01T10:00, 2026-12-01T10:00:30 or
// 2026-12-01T10:00:30.250 (UTC).
func at(s string) (int64, error) {
	for _, layout := range []string{"2006-01-02T15:04:05.000", "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("time %q: want 2026-12-01, 2026-12-01T10:00 or 2026-12-01T10:00:30", s)
}

func kv(line string) (first string, m map[string]string) {
	m = map[string]string{}
	for i, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			if i == 0 {
				first = f
			}
			m[f] = ""
			continue
		}
		m[k] = v
	}
	return first, m
}

func args(d *datadriven.TestData) map[string]string {
	m := map[string]string{}
	for _, a := range d.CmdArgs {
		m[a.Key] = strings.Join(a.Vals, ",")
	}
	return m
}

func money(s string) (ledger.Money, error) { return ledger.ParseMoney(s) }

func num(m map[string]string, k string, def int) (int, error) {
	v, ok := m[k]
	if !ok {
		return def, nil
	}
	return strconv.Atoi(v)
}

func timeArg(m map[string]string, k string) (int64, error) {
	v, ok := m[k]
	if !ok {
		return 0, nil
	}
	return at(v)
}

func (s *scenario) run(d *datadriven.TestData) (string, error) {
	a := args(d)
	if d.Cmd != "config" && s.l == nil {
		return "", fmt.Errorf("config must come first")
	}
	switch d.Cmd {
	case "config":
		return "", s.config(d.Input)
	case "commitment":
		from, err := timeArg(a, "from")
		if err != nil {
			return "", err
		}
		to, err := timeArg(a, "to")
		if err != nil {
			return "", err
		}
		count, err := num(a, "count", 1)
		if err != nil {
			return "", err
		}
		price, err := money(a["price"])
		if err != nil {
			return "", err
		}
		return "", s.l.AddCommitment(ledger.Commitment{ID: a["id"], Tenant: a["tenant"], Type: a["type"], Site: a["site"], Count: count, StartMs: from, EndMs: to, PricePerHour: price})
	case "grant":
		g := ledger.Grant{ID: a["id"], Tenant: a["tenant"], Queue: a["queue"]}
		var err error
		if k, ok := a["kind"]; ok {
			if g.Kind, err = ledger.ParseGrantKind(k); err != nil {
				return "", err
			}
		}
		if g.Amount, err = money(a["amount"]); err != nil {
			return "", err
		}
		if g.StartMs, err = timeArg(a, "from"); err != nil {
			return "", err
		}
		if g.ExpiresMs, err = timeArg(a, "expires"); err != nil {
			return "", err
		}
		return "", s.l.AddGrant(g)
	case "budget":
		m, err := money(a["monthly"])
		if err != nil {
			return "", err
		}
		return "", s.l.SetBudget(ledger.Budget{Tenant: a["tenant"], Monthly: m})
	case "usage":
		return s.usage(d.Input)
	case "sample":
		var b strings.Builder
		for _, line := range lines(d.Input) {
			_, m := kv(line)
			t, err := at(m["at"])
			if err != nil {
				return "", err
			}
			dev, err := num(m, "device", -1)
			if err != nil {
				return "", err
			}
			pct, err := num(m, "pct", 100)
			if err != nil {
				return "", err
			}
			if err := s.l.Sample(ledger.Sample{Node: m["node"], Device: dev, AtMs: t, Percent: pct}); err != nil {
				fmt.Fprintf(&b, "error: %v\n", err)
			}
		}
		return b.String(), nil
	case "meter":
		t, err := at(a["now"])
		if err != nil {
			return "", err
		}
		if err := s.l.Meter(t); err != nil {
			return "", err
		}
		return s.events(), nil
	case "seal":
		t, err := at(a["at"])
		if err != nil {
			return "", err
		}
		return "", s.l.Seal(t)
	case "events":
		return s.events(), nil
	case "report":
		return s.report(a, d.Input)
	case "invoice":
		m, err := ledger.ParseMonth(a["month"])
		if err != nil {
			return "", err
		}
		inv, err := s.l.Invoice(a["tenant"], m)
		if err != nil {
			return "", err
		}
		return formatInvoice(inv), nil
	case "standing":
		t, err := at(a["at"])
		if err != nil {
			return "", err
		}
		st := s.l.Standing(a["tenant"], a["queue"], t)
		return fmt.Sprintf("postpaid=%v credits=%s burn/h=%s overage/h=%s budget=%s spent=%s exhausted=%v lasts-1h=%v\n",
			st.Postpaid, st.Credits, st.BurnRate, st.OverageRate, st.Budget, st.Spent, st.Exhausted(), st.Lasts(3_600_000)), nil
	case "job":
		var b strings.Builder
		for _, u := range s.l.Job(a["id"]) {
			fmt.Fprintf(&b, "gang=%d replica=%d %s %s %s: %s\n", u.Gang, u.Replica, u.Tier, u.Type, u.Site, formatTotals(u.Totals))
		}
		return b.String(), nil
	case "commitments":
		t, err := at(a["at"])
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, c := range s.l.ActiveCommitments(t) {
			fmt.Fprintf(&b, "active %s: %s %dx%s at %q\n", c.ID, c.Tenant, c.Count, c.Type, c.Site)
		}
		for _, q := range s.l.CommittedQuota(t) {
			fmt.Fprintf(&b, "quota %s %s %q: %d\n", q.Tenant, q.Type, q.Site, q.Accelerators)
		}
		from, _ := timeArg(a, "from")
		to, _ := timeArg(a, "to")
		if to > 0 {
			for _, x := range s.l.CommitmentBoundaries(from, to) {
				fmt.Fprintf(&b, "boundary %s\n", ledger.FormatTime(x))
			}
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("unknown command %q", d.Cmd)
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// config reads the ledger's configuration, one directive a line:
//
//	currency USD 2
//	price TYPE [on-demand=X] [spot=X] [committed=X] [asset=X]
//	site NAME [pue=X] [carbon=G] [carbon-csv=FILE] [mult=X]
//	default-site [pue=X] [carbon=G]
//	default-tier TIER
//	thresholds P,P,P
//	ttl MINUTES
func (s *scenario) config(input string) error {
	cfg := ledger.Config{Sites: map[string]ledger.Site{}}
	cfg.Prices = ledger.DefaultPrices(nil)
	for _, line := range lines(input) {
		f := strings.Fields(line)
		_, m := kv(strings.Join(f[1:], " "))
		switch f[0] {
		case "currency":
			digits, _ := strconv.Atoi(f[2])
			cfg.Prices.Currency = ledger.Currency{Code: f[1], MinorDigits: digits}
		case "price":
			r := cfg.Prices.Types[f[1]]
			for k, dst := range map[string]*ledger.Money{"on-demand": &r.OnDemand, "spot": &r.Spot, "committed": &r.Committed, "asset": &r.Asset} {
				if v, ok := m[k]; ok {
					x, err := money(v)
					if err != nil {
						return err
					}
					*dst = x
				}
			}
			cfg.Prices.Types[f[1]] = r
		case "site", "default-site":
			var site ledger.Site
			name := ""
			if f[0] == "site" {
				name = f[1]
			}
			for k, v := range m {
				var err error
				switch k {
				case "pue":
					site.PUE, err = strconv.ParseFloat(v, 64)
				case "carbon":
					site.CarbonGPerKWh, err = strconv.ParseFloat(v, 64)
				case "mult":
					site.PriceMultiplier, err = strconv.ParseFloat(v, 64)
				case "carbon-csv":
					var data []byte
					if data, err = os.ReadFile(filepath.Join("testdata", v)); err == nil {
						site.Carbon, err = ledger.ParseCarbonCSV(v, data)
					}
				}
				if err != nil {
					return err
				}
			}
			if f[0] == "site" {
				cfg.Sites[name] = site
				s.sites = append(s.sites, name)
			} else {
				cfg.DefaultSite = &site
			}
		case "default-tier":
			cfg.DefaultTier = f[1]
		case "thresholds":
			cfg.Thresholds = nil
			for _, p := range strings.Split(f[1], ",") {
				n, err := strconv.Atoi(p)
				if err != nil {
					return err
				}
				cfg.Thresholds = append(cfg.Thresholds, n)
			}
		case "ttl":
			n, err := strconv.Atoi(f[1])
			if err != nil {
				return err
			}
			cfg.SampleTTLMs = int64(n) * 60_000
		default:
			return fmt.Errorf("config: unknown directive %q", f[0])
		}
	}
	l, err := ledger.New(cfg)
	if err != nil {
		return err
	}
	s.l = l
	return nil
}

// usage feeds records, one a line:
//
//	ID [job=J] tenant=T [queue=Q] [tier=X] [type=h100] [site=S] [node=N]
//	   [gang=G] [replica=R] [devices=D] [milli=M] [mask=0,1,...] from=T [to=T] [end=E]
//
// job defaults to the ID, queue to the tenant, site to the first site,
// node to n1, devices to 1, milli to 1000, end to finished when to is
// given.
func (s *scenario) usage(input string) (string, error) {
	var b strings.Builder
	for _, line := range lines(input) {
		id, m := kv(line)
		u := ledger.Usage{ID: id, Job: m["job"], Tenant: m["tenant"], Queue: m["queue"], Tier: m["tier"], Type: m["type"],
			Site: m["site"], Node: m["node"], End: m["end"]}
		if u.Job == "" {
			u.Job = id
		}
		if u.Queue == "" {
			u.Queue = u.Tenant
		}
		if u.Type == "" {
			u.Type = "h100"
		}
		if _, ok := m["site"]; !ok && len(s.sites) > 0 {
			u.Site = s.sites[0]
		}
		if u.Node == "" {
			u.Node = "n1"
		}
		var err error
		if u.Gang, err = num(m, "gang", 0); err != nil {
			return "", err
		}
		if u.Replica, err = num(m, "replica", 0); err != nil {
			return "", err
		}
		if u.Devices, err = num(m, "devices", 1); err != nil {
			return "", err
		}
		milli, err := num(m, "milli", 1000)
		if err != nil {
			return "", err
		}
		u.Milli = int32(milli)
		if mask, ok := m["mask"]; ok {
			for _, p := range strings.Split(mask, ",") {
				i, err := strconv.Atoi(p)
				if err != nil {
					return "", err
				}
				u.DeviceMask |= 1 << i
			}
		}
		if u.FromMs, err = timeArg(m, "from"); err != nil {
			return "", err
		}
		if u.ToMs, err = timeArg(m, "to"); err != nil {
			return "", err
		}
		if _, ok := m["end"]; !ok && u.ToMs != 0 {
			u.End = "finished"
		}
		o, err := s.l.Add(u)
		if err != nil {
			fmt.Fprintf(&b, "%s: error: %v\n", id, err)
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", id, o)
	}
	return b.String(), nil
}

func (s *scenario) events() string {
	var b strings.Builder
	for _, e := range s.l.Events() {
		fmt.Fprintf(&b, "event: %s\n", e)
	}
	return b.String()
}

// report: report from=T to=T [period=day|month] [by=dims] with capacity
// lines "TYPE SITE N [from=T] [to=T]" as input.
func (s *scenario) report(a map[string]string, input string) (string, error) {
	q := ledger.Query{}
	var err error
	if q.FromMs, err = at(a["from"]); err != nil {
		return "", err
	}
	if q.ToMs, err = at(a["to"]); err != nil {
		return "", err
	}
	if p, ok := a["period"]; ok {
		if q.Period, err = ledger.ParsePeriod(p); err != nil {
			return "", err
		}
	}
	if q.By, err = ledger.ParseDims(a["by"]); err != nil {
		return "", err
	}
	for _, line := range lines(input) {
		f := strings.Fields(line)
		_, m := kv(strings.Join(f[3:], " "))
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return "", err
		}
		c := ledger.Capacity{Type: f[0], Site: f[1], Accelerators: n, FromMs: q.FromMs, ToMs: q.ToMs}
		if v, ok := m["from"]; ok {
			if c.FromMs, err = at(v); err != nil {
				return "", err
			}
		}
		if v, ok := m["to"]; ok {
			if c.ToMs, err = at(v); err != nil {
				return "", err
			}
		}
		q.Capacity = append(q.Capacity, c)
	}
	rep, err := s.l.Report(q)
	if err != nil {
		return "", err
	}
	_, exact := a["exact"]
	return formatReport(rep, exact), nil
}

func formatTotals(t ledger.Totals) string {
	return fmt.Sprintf("%.4f acc-h, %.3f kWh (facility %.3f), %.3f kgCO2e, charge %s",
		t.AcceleratorHours(), t.KWh(), t.FacilityKWh(), t.CarbonKg(), t.Charge)
}

func formatReport(r *ledger.Report, exact bool) string {
	var b strings.Builder
	for _, row := range r.Rows {
		var who []string
		for _, s := range []string{row.Tenant, row.Queue, row.Tier, row.Type, row.Site, row.Commitment} {
			if s != "" {
				who = append(who, s)
			}
		}
		label := strings.Join(append([]string{ledger.FormatTime(row.Start)[:10], row.Kind.String()}, who...), " ")
		if exact {
			t := row.Totals
			fmt.Fprintf(&b, "%s: milliMs=%d energyMJ=%d facilityMJ=%d carbonMg=%d charge=%d\n", label, t.MilliMs, t.EnergyMJ, t.FacilityMJ, t.CarbonMg, t.Charge)
			continue
		}
		fmt.Fprintf(&b, "%s: %s", label, formatTotals(row.Totals))
		if row.Covered != 0 || row.Overage != 0 {
			fmt.Fprintf(&b, ", covered %.4f acc-h, overage %.4f acc-h at %s", float64(row.Covered)/3.6e9, float64(row.Overage)/3.6e9, row.OverageCharge)
		}
		if r.Query.Capacity != nil {
			fmt.Fprintf(&b, ", asset %s", row.Asset)
		}
		b.WriteString("\n")
	}
	tot := r.Totals()
	fmt.Fprintf(&b, "total: %s", formatTotals(tot.Totals))
	if tot.OverageCharge != 0 {
		fmt.Fprintf(&b, ", overage %s", tot.OverageCharge)
	}
	if r.Query.Capacity != nil {
		fmt.Fprintf(&b, ", asset %s of fleet cost %s", tot.Asset, r.FleetCost)
	}
	b.WriteString("\n")
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	return b.String()
}

func formatInvoice(inv *ledger.Invoice) string {
	var b strings.Builder
	c := inv.Currency
	fmt.Fprintf(&b, "invoice %s %s (%s, postpaid=%v)\n", inv.Tenant, inv.Month, c.Code, inv.Postpaid)
	for _, il := range inv.Lines {
		where := strings.Join(strings.Fields(strings.Join([]string{il.Type, il.Site, il.Ref}, " ")), " ")
		fmt.Fprintf(&b, "  %-17s %-24s %10.4f acc-h @ %s = %s -> %s\n", il.Kind, where, float64(il.MilliMs)/3.6e9, il.Rate.Format(c), il.Amount, il.Billed.Format(c))
	}
	fmt.Fprintf(&b, "  commitments %s + usage %s - credits %s = %s -> billed %s\n", inv.Commitments, inv.Usage, inv.Credits, inv.Total, inv.Billed.Format(c))
	fmt.Fprintf(&b, "  credits left %s, expired %s; budget %s, spent %s\n", inv.CreditsLeft, inv.CreditsExpired, inv.Budget, inv.Spent)
	return b.String()
}

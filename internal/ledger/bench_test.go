package ledger_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/gpufleet/gpufleet/internal/ledger"
)

// The benchmark fleet: 10,000 nodes of 8 accelerators (80,000) at four
// sites, three types; 200 tenants of 3 queues; the first 50 tenants hold
// commitments and credits. A month (December 2026) of usage is 2,000,000
// records: 80% whole devices (1, 2, 4 or 8 of a node), 20% fractions (250
// or 500 milli); durations log-uniform from 5 minutes to 3 days; 40% in the
// committed tier, 40% on-demand, 20% spot; jobs of 4 replicas, one record
// each. Two sites carry a half-hourly
// carbon series, two a constant. Records come in the order of their start,
// as the scheduling core emits them (a stream in time order), or, for the
// worst case, with starts drawn at random over the month.
const (
	benchNodes   = 10_000
	benchTenants = 200
	benchRecords = 2_000_000
)

var (
	benchSites = []string{"us-east", "us-west", "eu-west", "ap-south"}
	benchTypes = []string{"h100", "h200", "b200"}
	monthStart = ledger.Month{Year: 2026, Month: 12}.Start()
	monthEnd   = ledger.Month{Year: 2026, Month: 12}.End()
)

func benchConfig(b testing.TB) ledger.Config {
	rng := rand.New(rand.NewPCG(1, 2))
	sites := map[string]ledger.Site{}
	for i, s := range benchSites {
		site := ledger.Site{PUE: 1.1 + 0.05*float64(i), CarbonGPerKWh: 100 + 100*float64(i), PriceMultiplier: 1 + 0.05*float64(i)}
		if i < 2 {
			var pts []ledger.Point
			for t := monthStart - 86_400_000; t < monthEnd+86_400_000; t += 1_800_000 {
				// A daily swing around 250 g/kWh with noise.
				h := float64(t%86_400_000) / 3_600_000
				pts = append(pts, ledger.Point{AtMs: t, GPerKWh: 250 + 100*math.Sin(h/24*2*math.Pi) + rng.Float64()*30})
			}
			series, err := ledger.NewSeries(pts)
			if err != nil {
				b.Fatal(err)
			}
			site.Carbon = series
		}
		sites[s] = site
	}
	return ledger.Config{Sites: sites, ExpectRecords: benchRecords}
}

// benchNode places node n: its site and type.
func benchNode(n int) (site, typ string) {
	return benchSites[n*len(benchSites)/benchNodes], benchTypes[n%10*len(benchTypes)/10]
}

var tierNames = []string{"committed", "committed", "on-demand", "on-demand", "spot"}

type benchGen struct {
	rng     *rand.Rand
	random  bool // starts at random over the month, not in order
	i       int
	nodes   []string
	tenants []string
	queues  []string
	job     ledger.Usage // the gang of the current job
	node    int
}

func newBenchGen() *benchGen {
	g := &benchGen{rng: rand.New(rand.NewPCG(7, 11))}
	for n := range benchNodes {
		g.nodes = append(g.nodes, "node-"+strconv.Itoa(n))
	}
	for t := range benchTenants {
		g.tenants = append(g.tenants, fmt.Sprintf("tenant-%03d", t))
		for q := range 3 {
			g.queues = append(g.queues, fmt.Sprintf("tenant-%03d-q%d", t, q))
		}
	}
	return g
}

// next returns the next record. Records come in jobs of 4 replicas that
// start and end together on 4 neighbouring nodes, each replica its own
// record, as the core emits them for a gang.
func (g *benchGen) next() ledger.Usage {
	r := g.rng
	if g.i%4 == 0 {
		g.node = r.IntN(benchNodes - 3)
		site, typ := benchNode(g.node)
		t := r.IntN(benchTenants)
		u := ledger.Usage{
			Job: "j" + strconv.Itoa(g.i/4), Tenant: g.tenants[t], Queue: g.queues[t*3+r.IntN(3)],
			Kind: "batch", Type: typ, Tier: tierNames[r.IntN(len(tierNames))], Site: site,
			Devices: []int{1, 2, 4, 8}[r.IntN(4)], Milli: 1000, End: "finished",
		}
		if r.IntN(5) == 0 {
			u.Devices, u.Milli = 1, int32(250*(1+r.IntN(2)))
		}
		dur := int64(math.Exp(math.Log(300_000) + r.Float64()*(math.Log(259_200_000)-math.Log(300_000))))
		if g.random {
			u.FromMs = monthStart + r.Int64N(monthEnd-monthStart-dur)
		} else {
			u.FromMs = monthStart + int64(g.i)*(monthEnd-monthStart)/benchRecords + r.Int64N(1000)
		}
		u.ToMs = u.FromMs + dur
		g.job = u
	}
	u := g.job
	u.ID = "r" + strconv.Itoa(g.i)
	u.Replica = g.i % 4
	// Neighbouring nodes of the same type and site (the fleet's types
	// repeat every 10 nodes: step by 10).
	n := min(g.node+10*u.Replica, benchNodes-1)
	if s, ty := benchNode(n); s != u.Site || ty != u.Type {
		n = g.node
	}
	u.Node = g.nodes[n]
	g.i++
	return u
}

func benchLedger(b testing.TB) *ledger.Ledger {
	l, err := ledger.New(benchConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	for t := range 50 {
		n := t * benchNodes / 50
		site, typ := benchNode(n)
		tenant := fmt.Sprintf("tenant-%03d", t)
		if err := l.AddCommitment(ledger.Commitment{ID: "c-" + tenant, Tenant: tenant, Type: typ, Site: site, Count: 64 + 8*t,
			StartMs: monthStart - 30*86_400_000, EndMs: monthEnd + 300*86_400_000, PricePerHour: 1_500_000}); err != nil {
			b.Fatal(err)
		}
		if err := l.AddGrant(ledger.Grant{ID: "g-" + tenant, Tenant: tenant, Kind: ledger.Prepaid, Amount: ledger.Money(50_000+1000*t) * ledger.Micro}); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// fill feeds n records, closed.
func fill(b testing.TB, l *ledger.Ledger, g *benchGen, n int) {
	for range n {
		if _, err := l.Add(g.next()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMeterClosed: closed records metered whole, one Add each.
// Records are generated in chunks outside the timer.
func BenchmarkMeterClosed(b *testing.B) {
	b.Run("in-order", func(b *testing.B) { benchMeterClosed(b, false) })
	b.Run("random", func(b *testing.B) { benchMeterClosed(b, true) })
}

func benchMeterClosed(b *testing.B, random bool) {
	l := benchLedger(b)
	g := newBenchGen()
	g.random = random
	const chunk = 8192
	buf := make([]ledger.Usage, chunk)
	var cpu float64
	b.ResetTimer()
	done := 0
	for done < b.N {
		b.StopTimer()
		n := min(chunk, b.N-done)
		for i := range n {
			buf[i] = g.next()
		}
		c0 := cpuSeconds()
		b.StartTimer()
		for i := range n {
			if _, err := l.Add(buf[i]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cpu += cpuSeconds() - c0
		done += n
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu, "records/cpu-s")
	}
}

// BenchmarkMeterOpen: 80,000 open records (one per accelerator of the
// fleet, as a full fleet of one-device jobs would have) metered every
// minute; one op is one Meter call.
func BenchmarkMeterOpen(b *testing.B) {
	l := benchLedger(b)
	g := newBenchGen()
	for i := range 80_000 {
		u := g.next()
		u.ToMs, u.End = 0, ""
		u.FromMs = monthStart + int64(i)
		if _, err := l.Add(u); err != nil {
			b.Fatal(err)
		}
	}
	now := monthStart + 80_000
	c0 := cpuSeconds()
	b.ResetTimer()
	for b.Loop() {
		now += 60_000
		if err := l.Meter(now); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)*80_000/b.Elapsed().Seconds(), "record-meters/s")
	if cpu := cpuSeconds() - c0; cpu > 0 {
		b.ReportMetric(float64(b.N)*80_000/cpu, "record-meters/cpu-s")
	}
}

// BenchmarkReportMonth: the month's chargeback report over the 2,000,000
// records, by every dimension, with the fleet's capacity: usage, coverage
// of commitments per hour, attribution of the fleet's cost.
func BenchmarkReportMonth(b *testing.B) {
	for _, c := range []struct {
		name   string
		period ledger.Period
	}{{"monthly", ledger.Monthly}, {"daily", ledger.Daily}} {
		b.Run(c.name, func(b *testing.B) {
			l := reportLedger(b)
			q := ledger.Query{FromMs: monthStart, ToMs: monthEnd, Period: c.period,
				By: []ledger.Dim{ledger.ByTenant, ledger.ByQueue, ledger.ByTier, ledger.ByType, ledger.BySite}, Capacity: benchCapacity()}
			var rows int
			b.ResetTimer()
			for b.Loop() {
				rep, err := l.Report(q)
				if err != nil {
					b.Fatal(err)
				}
				rows = len(rep.Rows)
			}
			b.ReportMetric(float64(rows), "rows")
		})
	}
}

// BenchmarkInvoice: one tenant's invoice for the month (a committed
// tenant, with coverage settled per hour).
func BenchmarkInvoice(b *testing.B) {
	l := reportLedger(b)
	m := ledger.Month{Year: 2026, Month: 12}
	b.ResetTimer()
	for b.Loop() {
		if _, err := l.Invoice("tenant-007", m); err != nil {
			b.Fatal(err)
		}
	}
}

var reportCache *ledger.Ledger

func reportLedger(b *testing.B) *ledger.Ledger {
	if reportCache == nil {
		l := benchLedger(b)
		fill(b, l, newBenchGen(), benchRecords)
		reportCache = l
	}
	return reportCache
}

func benchCapacity() []ledger.Capacity {
	sum := map[[2]string]int{}
	for n := range benchNodes {
		site, typ := benchNode(n)
		sum[[2]string{typ, site}] += 8
	}
	var out []ledger.Capacity
	for _, s := range benchSites {
		for _, t := range benchTypes {
			if c := sum[[2]string{t, s}]; c > 0 {
				out = append(out, ledger.Capacity{Type: t, Site: s, Accelerators: c, FromMs: monthStart, ToMs: monthEnd})
			}
		}
	}
	return out
}

// BenchmarkMeterClosedMinimal: the fixed cost of a record: one tenant,
// queue, type, site and node, one-hour records, every ID new. What the
// realistic benchmark adds to it is the memory its 21,600 lines, 500,000
// jobs and 10,000 nodes take.
func BenchmarkMeterClosedMinimal(b *testing.B) {
	l, err := ledger.New(ledger.Config{Sites: map[string]ledger.Site{"s": {PUE: 1.2, CarbonGPerKWh: 300}}, ExpectRecords: b.N})
	if err != nil {
		b.Fatal(err)
	}
	us := make([]ledger.Usage, b.N)
	for i := range us {
		from := monthStart + int64(i)*1000
		us[i] = ledger.Usage{ID: "r" + strconv.Itoa(i), Job: "j" + strconv.Itoa(i/4), Tenant: "t", Queue: "q", Type: "h100", Tier: "on-demand",
			Site: "s", Node: "n", Replica: i % 4, Devices: 1, Milli: 1000, FromMs: from, ToMs: from + 3_600_000, End: "finished"}
	}
	c0 := cpuSeconds()
	b.ResetTimer()
	for i := range us {
		if _, err := l.Add(us[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if cpu := cpuSeconds() - c0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu, "records/cpu-s")
	}
}

// BenchmarkMeterOpenSampled: BenchmarkMeterOpen with utilization: before
// each Meter, one sample per device of the 10,000 nodes (80,000 samples a
// minute, as agents reporting nvidia-smi every minute would send), and
// records that name their device, so that energy and carbon follow each
// device's reading. One op is 80,000 samples and one Meter call.
func BenchmarkMeterOpenSampled(b *testing.B) {
	l := benchLedger(b)
	g := newBenchGen()
	for i := range 80_000 {
		u := g.next()
		u.ToMs, u.End = 0, ""
		u.FromMs = monthStart
		u.Node = g.nodes[i/8]
		u.Devices, u.Milli, u.DeviceMask = 1, 1000, 1<<(i%8)
		if _, err := l.Add(u); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	now := monthStart
	c0 := cpuSeconds()
	b.ResetTimer()
	for b.Loop() {
		for n := range benchNodes {
			for d := range 8 {
				if err := l.Sample(ledger.Sample{Node: g.nodes[n], Device: d, AtMs: now, Percent: rng.IntN(101)}); err != nil {
					b.Fatal(err)
				}
			}
		}
		now += 60_000
		if err := l.Meter(now); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)*80_000/b.Elapsed().Seconds(), "record-meters/s")
	if cpu := cpuSeconds() - c0; cpu > 0 {
		b.ReportMetric(float64(b.N)*80_000/cpu, "record-meters/cpu-s")
	}
}

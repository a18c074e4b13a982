package ledger_test
import ("testing";"strconv";"github.com/gpufleet/gpufleet/internal/ledger")
func BenchmarkTiny(b *testing.B) {
	l, _ := ledger.New(ledger.Config{Sites: map[string]ledger.Site{"s": {CarbonGPerKWh: 100}}})
	ids := make([]string, b.N)
	for i := range ids { ids[i] = "r" + strconv.Itoa(i) }
	c0 := cpuSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u := ledger.Usage{ID: ids[i], Job: "j", Tenant: "t", Queue: "q", Type: "h100", Tier: "spot", Site: "s", Node: "n", Devices: 1, Milli: 1000, FromMs: 1_796_083_200_000 + int64(i), ToMs: 1_796_083_200_000 + int64(i) + 1000, End: "finished"}
		if _, err := l.Add(u); err != nil { b.Fatal(err) }
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/(cpuSeconds()-c0), "records/cpu-s")
}

package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/carbon"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/store"
)

// BenchmarkSiteGauges10kNodes measures what every tick adds when sites are
// configured: the sites' listing (node counts, the core's draw per capped
// site, the forecast now) into the gauges, on 10,000 nodes in 4 regions of
// 5 zones each, every zone capped and with a forecast.
func BenchmarkSiteGauges10kNodes(b *testing.B) {
	fc, err := carbon.NewForecast(1800)
	if err != nil {
		b.Fatal(err)
	}
	var sites []sched.Site
	for r := range 4 {
		for z := range 5 {
			path := fmt.Sprintf("r%d/z%d", r, z)
			sites = append(sites, sched.Site{Domain: path, PowerCapKW: 1e5, PUE: 1.2})
			if err := fc.Set(path, carbon.Constant(float64(100+r*10+z), 1800)); err != nil {
				b.Fatal(err)
			}
		}
	}
	s, err := Open(Config{DataDir: b.TempDir(), InitialQueues: testQueues(), HeartbeatTimeout: time.Hour,
		Sched: sched.Config{Sites: sites, Forecast: fc}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l := s.term.Load().loop
	for i := range 10_000 {
		info := api.NodeInfo{Name: fmt.Sprintf("n%05d", i), Address: "x", Accel: "h100", Count: 8, CPUMilli: 64000, MemoryMiB: 1 << 19,
			Path: map[string]string{"region": fmt.Sprintf("r%d", i%4), "zone": fmt.Sprintf("z%d", i/4%5), "rack": fmt.Sprintf("k%d", i%50)}}
		fn, err := fleetNode(info)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.core.Apply(sched.NodeAdded{Node: fn}); err != nil {
			b.Fatal(err)
		}
		l.nodes[info.Name] = &node{rec: store.Node{Info: info, State: "ready"}, reported: true}
	}
	now := time.Now()
	if got := len(l.siteViews(now)); got != 20 {
		b.Fatalf("%d sites, want 20", got)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s.metrics.refresh.Lock()
		l.updateSiteGauges(s.metrics.sites, now)
		s.metrics.refresh.Unlock()
	}
}

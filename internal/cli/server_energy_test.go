package cli

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/server"
	"github.com/gpufleet/gpufleet/internal/spec"
)

func TestMergeMeterSitesMakesTheFleetFileTheSourceOfPUEAndCarbon(t *testing.T) {
	sites := spec.Sites{"us": {PUE: 1.3, CarbonGPerKWh: 390}, "eu/z1": {PowerCapKW: 10}}
	fromFleet := map[string]ledger.Site{"us/z1": {PUE: 1.3, CarbonGPerKWh: 390}, "eu/z1": {PUE: 1.2}}
	tests := map[string]struct {
		prices  map[string]ledger.Site
		want    map[string]ledger.Site
		wantErr string
	}{
		"no prices file": {
			want: map[string]ledger.Site{"us/z1": {PUE: 1.3, CarbonGPerKWh: 390}},
		},
		"a price multiplier is kept": {
			prices: map[string]ledger.Site{"us/z1": {PriceMultiplier: 1.1}, "eu/z1": {PUE: 1.1, CarbonGPerKWh: 30}},
			want:   map[string]ledger.Site{"us/z1": {PUE: 1.3, CarbonGPerKWh: 390, PriceMultiplier: 1.1}, "eu/z1": {PUE: 1.1, CarbonGPerKWh: 30}},
		},
		"pue twice": {
			prices:  map[string]ledger.Site{"us/z1": {PUE: 1.2}},
			wantErr: "site us/z1: pue is given by both the fleet file f.yaml and the prices file p.yaml; the fleet file's sites are the one source of a site's PUE and carbon intensity: remove it from the prices file",
		},
		"carbon twice, inherited": {
			prices:  map[string]ledger.Site{"us/z7": {CarbonGPerKWh: 100}},
			wantErr: "site us/z7: carbon is given by both the fleet file f.yaml and the prices file p.yaml; the fleet file's sites are the one source of a site's PUE and carbon intensity: remove it from the prices file",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			lc := ledger.Config{Sites: tc.prices}
			err := mergeMeterSites(&lc, sites, fromFleet, "f.yaml", "p.yaml")
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error %v, want %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, lc.Sites, cmp.AllowUnexported(ledger.Series{})); diff != "" {
				t.Errorf("meter's sites (-want +got):\n%s", diff)
			}
		})
	}
}

func TestServerForecastReloadsARefreshedSeriesFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mod time.Time) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	write("fleet.yaml", "kind: fleet\nsites:\n  us/z1: {carbonSeries: ci.csv, powerCapKW: 50}\ngenerate:\n  - {region: us, zone: z1, blocks: 1, racks: 1, nodes: 1, accelerators: 8xh100, cpu: 64, memory: 512Gi}\n", t0)
	write("ci.csv", "Time,Carbon Intensity\n2026-12-01 00:00:00,200\n2026-12-01 00:30:00,210\n", t0)
	f := &energyFlags{fleetFile: filepath.Join(dir, "fleet.yaml"), carbonAware: true}
	var cfg server.Config
	if err := f.apply(&cfg, ""); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cfg.Sched.Admission, "carbon") || !slices.Contains(cfg.Sched.Placement, "carbon") {
		t.Errorf("carbon-aware config: admission %v placement %v", cfg.Sched.Admission, cfg.Sched.Placement)
	}
	if diff := cmp.Diff([]sched.Site{{Domain: "us/z1", PowerCapKW: 50}}, cfg.Sched.Sites); diff != "" {
		t.Errorf("core's sites (-want +got):\n%s", diff)
	}
	at := t0.Unix()
	if got := cfg.Sched.Forecast.Intensity("us/z1", at, at+1); !cmp.Equal(got, []float64{200}) {
		t.Fatalf("forecast %v, want 200", got)
	}
	if changed, err := cfg.ForecastReload(); changed || err != nil {
		t.Errorf("reload of unchanged files: %v %v", changed, err)
	}
	// The feed writes a new forecast; a broken one is refused and the
	// forecast kept.
	write("ci.csv", "Time,Carbon Intensity\n2026-12-01 00:00:00,oops\n", t0.Add(time.Hour))
	if changed, err := cfg.ForecastReload(); changed || err == nil {
		t.Errorf("reload of a broken file: %v %v, want an error", changed, err)
	}
	if got := cfg.Sched.Forecast.Intensity("us/z1", at, at+1); !cmp.Equal(got, []float64{200}) {
		t.Errorf("after a broken file: %v, want the old 200", got)
	}
	write("ci.csv", "Time,Carbon Intensity\n2026-12-01 00:00:00,120\n2026-12-01 00:30:00,90\n", t0.Add(2*time.Hour))
	if changed, err := cfg.ForecastReload(); !changed || err != nil {
		t.Fatalf("reload of a refreshed file: %v %v", changed, err)
	}
	if got := cfg.Sched.Forecast.Intensity("us/z1", at, at+3600); !cmp.Equal(got, []float64{120, 90}) {
		t.Errorf("after the refresh: %v, want 120 90", got)
	}
}

package cli

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/ledger"
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

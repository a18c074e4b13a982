package energy

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/carbon"
	"github.com/gpufleet/gpufleet/internal/sched"
	"github.com/gpufleet/gpufleet/internal/spec"
)

const series = "Time,Carbon Intensity\n2020-01-01 00:00:00,200\n2020-01-01 00:30:00,100\n2020-01-01 01:00:00,300\n"

func files(m map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if s, ok := m[p]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
}

func TestPowerSitesResolvePUEAndKeepCapsToTheirDomain(t *testing.T) {
	sites := spec.Sites{
		"us":    {PUE: 1.3, CarbonGPerKWh: 390, PowerCapKW: 2600},
		"us/z1": {PowerCapKW: 1700},
		"us/z2": {CarbonGPerKWh: 300},
		"eu":    {PUE: 1.1, PowerCapKW: 1000, ITCap: true},
		"ap":    {CarbonGPerKWh: 500},
	}
	want := []sched.Site{
		{Domain: "eu", PowerCapKW: 1000, ITCap: true, PUE: 1.1},
		{Domain: "us", PowerCapKW: 2600, PUE: 1.3},
		{Domain: "us/z1", PowerCapKW: 1700, PUE: 1.3},
		{Domain: "us/z2", PUE: 1.3},
	}
	if diff := cmp.Diff(want, PowerSites(sites)); diff != "" {
		t.Errorf("sites (-want +got):\n%s", diff)
	}
}

func TestReadCarbonSeriesAndConstantsWithInheritance(t *testing.T) {
	sites := spec.Sites{
		"us":    {PUE: 1.3, CarbonGPerKWh: 390},
		"us/z2": {CarbonSeries: "gb.csv"},
		"eu/z1": {CarbonSeries: "gb.csv", PUE: 1.1},
	}
	read := 0
	rd := files(map[string]string{"conf/gb.csv": series})
	c, err := ReadCarbon(sites, []string{"eu/z1", "us", "us/z1", "us/z2"}, Options{Dir: "conf", Read: func(p string) ([]byte, error) {
		read++
		return rd(p)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if read != 1 {
		t.Errorf("the shared file was read %d times, want once", read)
	}
	if !c.Known || !c.Series || c.Latest != 1577836800 {
		t.Errorf("known %v series %v latest %d", c.Known, c.Series, c.Latest)
	}
	at := int64(1577836800)
	for site, want := range map[string][]float64{
		"us/z1":    {390, 390},
		"us/z2":    {200, 100},
		"eu/z1":    {200, 100},
		"us/z9/r1": {390, 390}, // a zone the file does not name: its region's
		"ap/z1":    nil,
	} {
		if diff := cmp.Diff(want, c.Forecast.Intensity(site, at, at+3600)); diff != "" {
			t.Errorf("forecast of %s (-want +got):\n%s", site, diff)
		}
	}
	if g, ok := c.Forecast.Now("us/z2", at+1800); !ok || g != 100 {
		t.Errorf("now at us/z2: %v %v, want 100", g, ok)
	}
	if s := c.Ledger["us/z1"]; s.PUE != 1.3 || s.CarbonGPerKWh != 390 || s.Carbon != nil {
		t.Errorf("meter's us/z1: %+v", s)
	}
	if s := c.Ledger["us/z2"]; s.PUE != 1.3 || s.Carbon == nil || s.Carbon.At(at*1000+1800_000) != 100 {
		t.Errorf("meter's us/z2: %+v", s)
	}
	if s := c.Ledger["eu/z1"]; s.PUE != 1.1 {
		t.Errorf("meter's eu/z1 PUE %v, want 1.1", s.PUE)
	}
}

func TestReadCarbonNoiseAndErrors(t *testing.T) {
	sites := spec.Sites{"eu/z1": {CarbonSeries: "gb.csv"}}
	c, err := ReadCarbon(sites, []string{"eu/z1"}, Options{Read: files(map[string]string{"gb.csv": series}),
		Noise: func(site string, s carbon.Series) carbon.Series {
			s.Values = []float64{1, 2, 3}
			return s
		}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Forecast.Intensity("eu/z1", 1577836800, 1577836800+5400); !cmp.Equal(got, []float64{1, 2, 3}) {
		t.Errorf("the core plans on %v, want the noisy series", got)
	}
	if s := c.Ledger["eu/z1"]; s.Carbon.At(1577836800_000) != 200 {
		t.Errorf("the meter reads %v, want the series itself", s.Carbon.At(1577836800_000))
	}
	_, err = ReadCarbon(sites, []string{"eu/z1"}, Options{Read: files(nil)})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "site eu/z1: carbonSeries") {
		t.Errorf("missing file: %v", err)
	}
	_, err = ReadCarbon(sites, []string{"eu/z1"}, Options{Read: files(map[string]string{"gb.csv": "Time,Carbon Intensity\n2020-01-01 00:00:00,x\n"})})
	if err == nil || !strings.HasPrefix(err.Error(), "gb.csv:2:21: intensity") {
		t.Errorf("bad file: %v", err)
	}
	c, err = ReadCarbon(spec.Sites{"eu": {PUE: 1.2}}, []string{"eu/z1"}, Options{})
	if err != nil || c.Known {
		t.Errorf("no carbon: known %v, err %v", c.Known, err)
	}
}

func TestCarbonFirst(t *testing.T) {
	for name, tc := range map[string]struct{ in, want []string }{
		"default": {nil, nil},
		"scorers": {[]string{"ready", "accelerator", "resources", "bestfit", "fragmentation"}, []string{"ready", "accelerator", "resources", "bestfit", "carbon", "fragmentation"}},
		"filters": {[]string{"ready", "resources"}, []string{"ready", "resources", "carbon"}},
		"has it":  {[]string{"ready", "carbon", "packing"}, []string{"ready", "carbon", "packing"}},
	} {
		t.Run(name, func(t *testing.T) {
			got := CarbonFirst(tc.in)
			if tc.want == nil {
				if got[len(got)-1] == "carbon" && len(got) > len(sched.DefaultPlacement)+1 {
					t.Errorf("default chain: %v", got)
				}
				if !contains(got, "carbon") {
					t.Errorf("default chain without carbon: %v", got)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("chain (-want +got):\n%s", diff)
			}
		})
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

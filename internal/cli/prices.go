package cli

import (
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/server"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// maxCarbonBytes bounds a carbon intensity series (a year at 15-minute
// steps is about 1.5 MB).
const maxCarbonBytes = 64 << 20

// loadPrices reads a prices file and the carbon series it names (paths
// relative to the file) into a ledger configuration.
func loadPrices(path string, opts ...spec.Option) (ledger.Config, error) {
	data, err := readFile(path, spec.MaxFileBytes)
	if err != nil {
		return ledger.Config{}, err
	}
	pf, err := spec.ParsePrices(path, data, opts...)
	if err != nil {
		return ledger.Config{}, err
	}
	sites := make([]string, 0, len(pf.CarbonFiles))
	for s := range pf.CarbonFiles {
		sites = append(sites, s)
	}
	sort.Strings(sites)
	for _, site := range sites {
		file := pf.CarbonFiles[site]
		if !filepath.IsAbs(file) {
			file = filepath.Join(filepath.Dir(path), file)
		}
		csv, err := readFile(file, maxCarbonBytes)
		if err != nil {
			return ledger.Config{}, fmt.Errorf("%s: carbon series of site %q: %w", path, site, err)
		}
		series, err := ledger.ParseCarbonCSV(file, csv)
		if err != nil {
			return ledger.Config{}, err
		}
		pf.SetCarbon(site, series)
	}
	return pf.Config, nil
}

// accountingFlags are the server's accounting flags.
type accountingFlags struct {
	prices        string
	meterInterval time.Duration
	spotNotice    time.Duration
}

func addAccountingFlags(c *cobra.Command) *accountingFlags {
	f := &accountingFlags{}
	c.Flags().StringVar(&f.prices, "prices", "", "prices `FILE`: rates per accelerator type and tier, sites' PUE, carbon intensity and price multipliers (default: rates derived from the catalog's list prices)")
	c.Flags().DurationVar(&f.meterInterval, "meter-interval", time.Minute, "meter running work this often: credits and budgets are enforced within one interval")
	c.Flags().DurationVar(&f.spotNotice, "spot-notice", 0, "notice spot-tier work gets when other work takes its capacity back (0: each job's own notice)")
	return f
}

// apply sets the accounting of a server's configuration.
func (f *accountingFlags) apply(cfg *server.Config) error {
	if f.meterInterval < time.Second {
		return fmt.Errorf("--meter-interval %s: want at least 1s", f.meterInterval)
	}
	if f.spotNotice < 0 {
		return fmt.Errorf("--spot-notice %s: must not be negative", f.spotNotice)
	}
	cfg.Accounting.MeterInterval = f.meterInterval
	cfg.Sched.SpotNoticeSec = int64(f.spotNotice / time.Second)
	if f.prices != "" {
		lc, err := loadPrices(f.prices)
		if err != nil {
			return fmt.Errorf("--prices: %w", err)
		}
		cfg.Accounting.Ledger = lc
	}
	return nil
}

package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/sim"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// simAccountFlags are sim run's accounting flags.
type simAccountFlags struct {
	on                           bool
	prices, credits, commitments string
	epoch                        string
	meter                        time.Duration
	noEnforce                    bool
}

func addSimAccountFlags(c *cobra.Command) *simAccountFlags {
	f := &simAccountFlags{}
	c.Flags().BoolVar(&f.on, "account", false, "meter the run in the ledger at the catalog's list prices (implied by --prices, --credits and --commitments)")
	c.Flags().StringVar(&f.prices, "prices", "", "prices `FILE` (default: rates derived from the catalog's list prices; the sites' PUE and carbon from the fleet)")
	c.Flags().StringVar(&f.credits, "credits", "", "credits `FILE`: grants and monthly budgets; a tenant whose credits run out is paused")
	c.Flags().StringVar(&f.commitments, "commitments", "", "commitments `FILE`: committed-tier quota and fees for each term")
	c.Flags().StringVar(&f.epoch, "epoch", "2026-11-30", "the calendar `DATE` (UTC) of the virtual clock's 0, on which commitments, credits and carbon series are dated")
	c.Flags().DurationVar(&f.meter, "meter-interval", time.Hour, "with credits or budgets, meter running work this often (virtual time)")
	c.Flags().BoolVar(&f.noEnforce, "no-enforce", false, "let tenants whose credits or budget are spent run on, billed for it")
	return f
}

// config reads the accounting files; nil when the run is not metered.
func (f *simAccountFlags) config(fl *fleet.Fleet, sites spec.Sites, qs []quota.Spec, siteLevel string) (*sim.Accounting, error) {
	if !f.on && f.prices == "" && f.credits == "" && f.commitments == "" {
		return nil, nil
	}
	epoch, err := time.Parse("2006-01-02", f.epoch)
	if err != nil {
		return nil, fmt.Errorf("--epoch %q: want a date YYYY-MM-DD (UTC)", f.epoch)
	}
	if f.meter < time.Second {
		return nil, fmt.Errorf("--meter-interval %s: want at least 1s", f.meter)
	}
	a := &sim.Accounting{EpochSec: epoch.Unix(), MeterSec: int64(f.meter / time.Second), NoEnforce: f.noEnforce}
	// Sites from the fleet's attributes, where the prices file does not
	// say otherwise.
	a.Ledger = ledger.Config{Catalog: fl.Catalog, Sites: map[string]ledger.Site{}}
	names := sim.SiteNames(fl, siteLevel)
	for i, n := range names {
		if _, done := a.Ledger.Sites[n]; done {
			continue
		}
		s := sites.For(fl.Nodes[i].Path)
		a.Ledger.Sites[n] = ledger.Site{PUE: s.PUE, CarbonGPerKWh: s.CarbonGPerKWh}
	}
	opts := []spec.Option{spec.WithFleet(fl), spec.WithQueues(qs)}
	if f.prices != "" {
		lc, err := loadPrices(f.prices, opts[:1]...)
		if err != nil {
			return nil, fmt.Errorf("--prices: %w", err)
		}
		for n, s := range a.Ledger.Sites {
			if _, given := lc.Sites[n]; !given {
				if lc.Sites == nil {
					lc.Sites = map[string]ledger.Site{}
				}
				lc.Sites[n] = s
			}
		}
		a.Ledger = lc
	}
	if f.commitments != "" {
		data, err := readFile(f.commitments, spec.MaxFileBytes)
		if err == nil {
			a.Commitments, err = spec.ParseCommitments(f.commitments, data, opts...)
		}
		if err != nil {
			return nil, fmt.Errorf("--commitments: %w", err)
		}
	}
	if f.credits != "" {
		data, err := readFile(f.credits, spec.MaxFileBytes)
		var cf spec.CreditsFile
		if err == nil {
			cf, err = spec.ParseCredits(f.credits, data, opts...)
		}
		if err != nil {
			return nil, fmt.Errorf("--credits: %w", err)
		}
		a.Grants, a.Budgets = cf.Grants, cf.Budgets
	}
	return a, nil
}

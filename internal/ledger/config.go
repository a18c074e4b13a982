package ledger

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/gpufleet/gpufleet/internal/fleet"
)

// Tier is a capacity tier: how a tenant buys the accelerators it uses.
type Tier uint8

// The capacity tiers.
const (
	// Committed capacity is reserved under a contract (a Commitment):
	// the tenant pays for it used or not, and its usage in this tier is
	// covered by it up to the committed count.
	Committed Tier = iota
	// OnDemand capacity is paid by the accelerator-hour as used.
	OnDemand
	// Spot capacity is cheaper and may be preempted at any time.
	Spot
	numTiers
)

var tierNames = [numTiers]string{"committed", "on-demand", "spot"}

func (t Tier) String() string {
	if t < numTiers {
		return tierNames[t]
	}
	return fmt.Sprintf("Tier(%d)", t)
}

// ParseTier reads a tier name.
func ParseTier(s string) (Tier, error) {
	for i, n := range tierNames {
		if n == s {
			return Tier(i), nil
		}
	}
	return 0, fmt.Errorf("tier %q: want one of %s", s, strings.Join(tierNames[:], ", "))
}

// TierNames lists the tiers.
func TierNames() []string { return append([]string(nil), tierNames[:]...) }

// Rate is what one accelerator-hour of a type costs in each tier, and what
// the operator's own asset costs an hour (depreciation, power, space and
// staff: the basis of chargeback).
type Rate struct {
	OnDemand, Spot, Committed Money
	Asset                     Money
}

// tier returns the rate of a tier.
func (r Rate) tier(t Tier) Money {
	switch t {
	case Committed:
		return r.Committed
	case Spot:
		return r.Spot
	}
	return r.OnDemand
}

// Prices is the price table: a rate per accelerator type.
type Prices struct {
	Currency Currency
	Types    map[string]Rate
}

// Derivations of the default price table from the catalog's list price
// (fleet.AccelType.PricePerHour, an on-demand price):
//
//   - spot at 40% of on-demand: public clouds' GPU spot prices run at 30-70%
//     of on-demand; 40% is the middle of what they post for H100-class
//     instances;
//   - committed at 70% of on-demand, the usual one- to three-year
//     reservation discount;
//   - asset cost at 50% of on-demand: an H100 server's purchase price over
//     four years, plus power at about 1 kW per accelerator and space, is
//     near half of its on-demand list price.
//
// An operator's own figures belong in the price file; these only make a
// ledger usable without one.
const (
	DefaultSpotFraction      = 0.40
	DefaultCommittedFraction = 0.70
	DefaultAssetFraction     = 0.50
)

// DefaultRate derives a type's rates from its list price.
func DefaultRate(t fleet.AccelType) Rate {
	list := t.PricePerHour * Micro
	return Rate{
		OnDemand:  Money(math.Round(list)),
		Spot:      Money(math.Round(list * DefaultSpotFraction)),
		Committed: Money(math.Round(list * DefaultCommittedFraction)),
		Asset:     Money(math.Round(list * DefaultAssetFraction)),
	}
}

// DefaultPrices derives a price table for every type of the catalog (nil:
// fleet.DefaultCatalog()), in US dollars.
func DefaultPrices(cat *fleet.Catalog) Prices {
	if cat == nil {
		cat = fleet.DefaultCatalog()
	}
	p := Prices{Currency: DefaultCurrency, Types: map[string]Rate{}}
	for _, t := range cat.Types {
		p.Types[t.Name] = DefaultRate(t)
	}
	return p
}

// Site holds what metering needs of a topology domain (the one a usage
// record's Site names): its power usage effectiveness, its grid's carbon
// intensity and the multiplier on prices there.
type Site struct {
	// PUE is facility energy over IT energy, 1..5; 0 means 1.
	PUE float64
	// Carbon is the grid's intensity over time; when nil, CarbonGPerKWh
	// holds at all times.
	Carbon        *Series
	CarbonGPerKWh float64
	// PriceMultiplier scales every tier's rate at the site (not the asset
	// cost); 0 means 1.
	PriceMultiplier float64
}

// Config is what a ledger is built from.
type Config struct {
	// Catalog gives each accelerator type's board and idle power; nil
	// means fleet.DefaultCatalog().
	Catalog *fleet.Catalog
	// Prices is the price table; types it leaves out get DefaultRate, and
	// a zero currency is DefaultCurrency.
	Prices Prices
	// Sites maps a site name (Usage.Site) to its attributes.
	Sites map[string]Site
	// DefaultSite applies to sites Sites does not name; when nil, a
	// record at such a site is refused.
	DefaultSite *Site
	// DefaultTier is the tier of records whose Tier is empty (the
	// scheduling core's default tier); "" means on-demand.
	DefaultTier string
	// SampleTTLMs is how long a utilization sample holds when no newer
	// one comes; after it a device counts as fully used again. 0 means
	// DefaultSampleTTLMs.
	SampleTTLMs int64
	// Thresholds are the percentages of a credit grant burned, and of a
	// monthly budget spent, that raise an event; nil means 50, 80, 100.
	Thresholds []int
	// ExpectRecords, when given, sizes the table of record IDs for that
	// many records up front (the records between two seals), sparing the
	// rehashing of a growing table.
	ExpectRecords int
}

// DefaultSampleTTLMs is five minutes: agents heartbeat every two seconds by
// default, so a device with no sample for five minutes has an agent that
// stopped reporting it, and the ledger falls back to counting it as fully
// used rather than extending a stale reading.
const DefaultSampleTTLMs = 5 * 60 * 1000

// DefaultThresholds raise events at half, four fifths and all of a grant
// or budget.
var DefaultThresholds = []int{50, 80, 100}

// Bounds that keep every exact product of metering below 2^128 and every
// total of a record's day below 2^63 (see u128.go).
const (
	MaxDevices     = 1024  // devices one record holds
	MaxBoardPowerW = 20000 // per accelerator
	MaxPUE         = 5
)

// typeInfo is what metering needs of an accelerator type, in integers.
type typeInfo struct {
	name    string
	idleMW  int64 // milliwatts
	boardMW int64
	rate    Rate
}

// siteInfo is a resolved site.
type siteInfo struct {
	name     string
	pueMilli int64
	carbon   *Series
	mult     float64
	// rates[type][tier] at this site, per accelerator-hour.
	rates [][numTiers]Money
}

func (c *Config) resolve() (types []typeInfo, byType map[string]int, cur Currency, defTier Tier, err error) {
	if c.Catalog == nil {
		c.Catalog = fleet.DefaultCatalog()
	}
	cur = c.Prices.Currency
	if cur == (Currency{}) {
		cur = DefaultCurrency
	}
	if err = cur.validate(); err != nil {
		return
	}
	names := make([]string, 0, len(c.Prices.Types))
	for n := range c.Prices.Types {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if c.Catalog.Index(n) < 0 {
			err = fmt.Errorf("prices: type %q is not in the catalog (want one of %s)", n, strings.Join(c.Catalog.Names(), ", "))
			return
		}
		r := c.Prices.Types[n]
		if r.OnDemand < 0 || r.Spot < 0 || r.Committed < 0 || r.Asset < 0 {
			err = fmt.Errorf("prices: type %q: rates must not be negative", n)
			return
		}
		if r.OnDemand > maxRate || r.Spot > maxRate || r.Committed > maxRate || r.Asset > maxRate {
			err = fmt.Errorf("prices: type %q: a rate is above %s an hour", n, maxRate)
			return
		}
	}
	byType = map[string]int{}
	for _, t := range c.Catalog.Types {
		if t.BoardPowerW < 0 || t.BoardPowerW > MaxBoardPowerW || t.IdlePowerW < 0 || t.IdlePowerW > t.BoardPowerW || math.IsNaN(t.BoardPowerW) || math.IsNaN(t.IdlePowerW) {
			err = fmt.Errorf("catalog: type %q: board power %vW and idle power %vW: want 0 <= idle <= board <= %d", t.Name, t.BoardPowerW, t.IdlePowerW, MaxBoardPowerW)
			return
		}
		r, ok := c.Prices.Types[t.Name]
		if !ok {
			r = DefaultRate(t)
		}
		byType[t.Name] = len(types)
		types = append(types, typeInfo{name: t.Name, idleMW: int64(math.Round(t.IdlePowerW * 1000)), boardMW: int64(math.Round(t.BoardPowerW * 1000)), rate: r})
	}
	defTier = OnDemand
	if c.DefaultTier != "" {
		if defTier, err = ParseTier(c.DefaultTier); err != nil {
			err = fmt.Errorf("default tier: %w", err)
			return
		}
	}
	if c.SampleTTLMs < 0 {
		err = fmt.Errorf("sample TTL %dms must not be negative", c.SampleTTLMs)
		return
	}
	if c.Thresholds == nil {
		c.Thresholds = DefaultThresholds
	}
	for i, p := range c.Thresholds {
		if p < 1 || p > 1000 {
			err = fmt.Errorf("thresholds: %d%%: want 1..1000", p)
			return
		}
		if i > 0 && p <= c.Thresholds[i-1] {
			err = fmt.Errorf("thresholds: want increasing percentages, got %v", c.Thresholds)
			return
		}
	}
	return types, byType, cur, defTier, nil
}

// maxRate bounds a rate at a million units an accelerator-hour.
const maxRate = Money(1_000_000 * Micro)

func resolveSite(name string, s Site, types []typeInfo) (*siteInfo, error) {
	pue := s.PUE
	if pue == 0 {
		pue = 1
	}
	if math.IsNaN(pue) || pue < 1 || pue > MaxPUE {
		return nil, fmt.Errorf("site %q: pue %v: want 1..%d", name, s.PUE, MaxPUE)
	}
	mult := s.PriceMultiplier
	if mult == 0 {
		mult = 1
	}
	if math.IsNaN(mult) || mult < 0 || mult > 100 {
		return nil, fmt.Errorf("site %q: price multiplier %v: want 0..100", name, s.PriceMultiplier)
	}
	series := s.Carbon
	if series == nil {
		var err error
		if series, err = ConstantSeries(s.CarbonGPerKWh); err != nil {
			return nil, fmt.Errorf("site %q: %w", name, err)
		}
	}
	si := &siteInfo{name: name, pueMilli: int64(math.Round(pue * 1000)), carbon: series, mult: mult, rates: make([][numTiers]Money, len(types))}
	for i, t := range types {
		for tier := range numTiers {
			// The multiplied rate is rounded once, here, to a whole
			// micro-unit an hour.
			si.rates[i][tier] = Money(math.Round(float64(t.rate.tier(tier)) * mult))
		}
	}
	return si, nil
}

package spec

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/quota"
)

// The accounting files: a price table with the sites' energy and carbon
// attributes, capacity commitments, and credit grants with budgets. The
// accounting itself is internal/ledger's; these only read what an
// operator writes, as strictly as the other specs.
const (
	KindPrices      Kind = "prices"
	KindCommitments Kind = "commitments"
	KindCredits     Kind = "credits"
)

// A prices file:
//
//	kind: prices
//	currency: USD            # ISO 4217; minorDigits 2 unless given
//	derive: {spot: 0.4, committed: 0.7, asset: 0.5}   # of the list price
//	types:
//	  h100: {onDemand: 2.49, spot: 0.99, committed: 1.75, asset: 1.10}
//	sites:
//	  us-east: {pue: 1.2, carbon: 380, priceMultiplier: 1.1}
//	  gb: {pue: 1.15, carbonSeries: gb_ci.csv}
//	defaultSite: {pue: 1.3, carbon: 400}
//	defaultTier: on-demand
//	thresholds: [50, 80, 100]
//	sampleTTL: 5m
//
// Amounts are per accelerator-hour, in units of the currency, with at most
// six decimals. A type's missing rates are derived from the catalog's list
// price (fleet.AccelType.PricePerHour) by the derive fractions, whose
// defaults are ledger's. carbon is a constant gCO2e/kWh; carbonSeries
// names a CSV file of the grid's intensity over time, relative to the
// prices file, which the caller reads (ledger.ParseCarbonCSV) and sets
// with PricesFile.SetCarbon.

var pricesFields = []string{"kind", "currency", "minorDigits", "derive", "types", "sites", "defaultSite", "defaultTier", "thresholds", "sampleTTL"}

var rateFields = []string{"onDemand", "spot", "committed", "asset"}

var accountingSiteFields = []string{"pue", "carbon", "carbonSeries", "priceMultiplier"}

// PricesFile is a parsed prices file.
type PricesFile struct {
	// Config is the ledger's configuration; sites with a carbon series
	// get it from SetCarbon.
	Config ledger.Config
	// CarbonFiles maps a site ("" for the default site) to the carbon
	// series file it names.
	CarbonFiles map[string]string
}

// SetCarbon sets a site's (or, for "", the default site's) carbon series.
func (p *PricesFile) SetCarbon(site string, s *ledger.Series) {
	if site == "" {
		if p.Config.DefaultSite != nil {
			p.Config.DefaultSite.Carbon = s
		}
		return
	}
	v, ok := p.Config.Sites[site]
	if !ok {
		return
	}
	v.Carbon = s
	p.Config.Sites[site] = v
}

// ParsePrices reads a prices file; types are checked against the catalog
// of WithFleet (the default catalog otherwise).
func ParsePrices(name string, data []byte, opts ...Option) (PricesFile, error) {
	d := newDecoder(name)
	v, ok := singleDoc(d, data, "prices")
	if !ok {
		return PricesFile{}, d.err()
	}
	o := makeOptions(opts)
	out := o.pricesFile(v)
	if d.failed() {
		return PricesFile{}, d.err()
	}
	if _, err := ledger.New(out.Config); err != nil {
		// The checks above cover ledger.New's; this keeps them in step.
		d.add(0, 0, "", err.Error())
		return PricesFile{}, d.err()
	}
	return out, nil
}

// singleDoc returns the one document of a file.
func singleDoc(d *decoder, data []byte, what string) (value, bool) {
	docs := d.documents(data, MaxFileBytes)
	if d.failed() {
		return value{}, false
	}
	if len(docs) != 1 {
		if len(docs) == 0 {
			d.add(0, 0, "", "holds no "+what)
		} else {
			d.add(docs[1].line, 0, "", fmt.Sprintf("holds %d documents; want one", len(docs)))
		}
		return value{}, false
	}
	return docs[0].root(), true
}

func checkKind(fs fields, want Kind) {
	if f, ok := fs.get("kind"); ok {
		if s, ok := f.str(); ok && s != string(want) {
			f.errorf("%q: a %s file has kind %s", s, want, want)
		}
	}
}

func (o *options) pricesFile(v value) PricesFile {
	out := PricesFile{Config: ledger.Config{Catalog: o.catalog, Sites: map[string]ledger.Site{}}, CarbonFiles: map[string]string{}}
	fs, isMap := v.fields(pricesFields...)
	if !isMap {
		return out
	}
	checkKind(fs, KindPrices)
	cur := ledger.DefaultCurrency
	if f, ok := fs.get("currency"); ok {
		if s, ok := f.str(); ok {
			if len(s) != 3 || strings.ToUpper(s) != s || strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
				f.errorf("%q: want an ISO 4217 code of three capital letters such as USD", s)
			}
			cur.Code = s
		}
	}
	if f, ok := fs.get("minorDigits"); ok {
		x, _ := f.intIn(0, 6)
		cur.MinorDigits = int(x)
	}
	fractions := map[string]float64{"onDemand": 1, "spot": ledger.DefaultSpotFraction, "committed": ledger.DefaultCommittedFraction, "asset": ledger.DefaultAssetFraction}
	if f, ok := fs.get("derive"); ok {
		dfs, isMap := f.fields(rateFields...)
		if isMap {
			for _, k := range rateFields {
				if fv, ok := dfs.get(k); ok {
					if x, ok := fv.number(); ok {
						if !(x >= 0 && x <= 100) {
							fv.errorf("%v, want 0..100 (a fraction of the list price)", fv.n.GetToken().Value)
						}
						fractions[k] = x
					}
				}
			}
		}
	}
	prices := ledger.Prices{Currency: cur, Types: map[string]ledger.Rate{}}
	given := map[string]fields{}
	if f, ok := fs.get("types"); ok {
		ps, _ := f.pairs()
		for _, p := range ps {
			if o.catalog.Index(p.key) < 0 {
				v.d.add(p.line, p.col, p.val.path, fmt.Sprintf("type %q is not in the catalog (want one of %s)", p.key, typeList(o.catalog)))
				continue
			}
			rfs, isMap := p.val.fields(rateFields...)
			if isMap {
				given[p.key] = rfs
			}
		}
	}
	for _, t := range o.catalog.Types {
		rfs, has := given[t.Name]
		rate := func(k string) ledger.Money {
			if has {
				if fv, ok := rfs.get(k); ok {
					m, _ := moneyValue(fv)
					return m
				}
			}
			return ledger.Money(math.Round(t.PricePerHour * ledger.Micro * fractions[k]))
		}
		prices.Types[t.Name] = ledger.Rate{OnDemand: rate("onDemand"), Spot: rate("spot"), Committed: rate("committed"), Asset: rate("asset")}
	}
	out.Config.Prices = prices
	if f, ok := fs.get("sites"); ok {
		ps, _ := f.pairs()
		for _, p := range ps {
			if msg := checkSiteName(p.key); msg != "" {
				v.d.add(p.line, p.col, p.val.path, "site "+msg)
				continue
			}
			s, file := accountingSite(p.val)
			out.Config.Sites[p.key] = s
			if file != "" {
				out.CarbonFiles[p.key] = file
			}
		}
	}
	if f, ok := fs.get("defaultSite"); ok {
		s, file := accountingSite(f)
		out.Config.DefaultSite = &s
		if file != "" {
			out.CarbonFiles[""] = file
		}
	}
	if f, ok := fs.get("defaultTier"); ok {
		if s, ok := f.str(); ok {
			if _, err := ledger.ParseTier(s); err != nil {
				f.errorf("%v", err)
			}
			out.Config.DefaultTier = s
		}
	}
	if f, ok := fs.get("thresholds"); ok {
		elems, _ := f.seq()
		if len(elems) == 0 {
			f.errorf("want at least one percentage, such as [50, 80, 100]")
		}
		th := []int{}
		for i, e := range elems {
			x, ok := e.intIn(1, 1000)
			if !ok {
				continue
			}
			if i > 0 && len(th) > 0 && int(x) <= th[len(th)-1] {
				e.errorf("%d is not above the percentage before it; want increasing percentages", x)
				continue
			}
			th = append(th, int(x))
		}
		out.Config.Thresholds = th
	}
	if f, ok := fs.get("sampleTTL"); ok {
		if s, ok := f.str(); ok {
			sec, err := parseDuration(s)
			switch {
			case err != nil:
				f.errorf("%v", err)
			case sec == 0 || sec > 86400:
				f.errorf("%s: want 1s..1d", s)
			}
			out.Config.SampleTTLMs = sec * 1000
		}
	}
	return out
}

// checkSiteName says why s is not a site name: a domain path such as
// us-east or us-east/z1.
func checkSiteName(s string) string {
	if s == "" || len(s) > maxNameLen {
		return fmt.Sprintf("%q: want 1..%d characters", s, maxNameLen)
	}
	for _, part := range strings.Split(s, "/") {
		if msg := checkName(part); msg != "" {
			return fmt.Sprintf("%q: want a domain path such as us-east or us-east/z1 (%s)", s, msg)
		}
	}
	return ""
}

func accountingSite(v value) (ledger.Site, string) {
	var s ledger.Site
	fs, isMap := v.fields(accountingSiteFields...)
	if !isMap {
		return s, ""
	}
	num := func(k string, lo, hi float64, dst *float64) {
		fv, ok := fs.get(k)
		if !ok {
			return
		}
		x, ok := fv.number()
		if !ok {
			return
		}
		if !(x >= lo && x <= hi) {
			fv.errorf("%v, want %v..%v", fv.n.GetToken().Value, lo, hi)
		}
		*dst = x
	}
	num("pue", 1, ledger.MaxPUE, &s.PUE)
	num("carbon", 0, ledger.MaxCarbonGPerKWh, &s.CarbonGPerKWh)
	num("priceMultiplier", 0.01, 100, &s.PriceMultiplier)
	file := ""
	if fv, ok := fs.get("carbonSeries"); ok {
		if _, both := fs.get("carbon"); both {
			fv.errorf("give carbon (a constant) or carbonSeries (a file), not both")
		}
		if f, ok := fv.str(); ok {
			if f == "" || strings.ContainsRune(f, 0) {
				fv.errorf("want a file name")
			}
			file = f
		}
	}
	return s, file
}

// moneyValue reads an amount in units of currency exactly.
func moneyValue(v value) (ledger.Money, bool) {
	text, quoted, ok := v.numberText()
	if !ok {
		return 0, false
	}
	if quoted {
		v.errorf("want an amount (a number such as 2.49), got a string")
		return 0, false
	}
	m, err := ledger.ParseMoney(text)
	if err != nil {
		v.errorf("%v", err)
		return 0, false
	}
	return m, true
}

// timeValue reads a date (midnight UTC) or an RFC 3339 time as Unix ms.
func timeValue(v value) (int64, bool) {
	s, ok := v.str()
	if !ok {
		return 0, false
	}
	for _, layout := range []string{"2006-01-02", time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			if y := t.Year(); y < 1970 || y > 2199 {
				v.errorf("%q: want a year in 1970..2199", s)
				return 0, false
			}
			return t.UnixMilli(), true
		}
	}
	v.errorf("%q: want a date (2026-12-01, midnight UTC) or an RFC 3339 time (2026-12-01T08:00:00Z)", s)
	return 0, false
}

// tenantCheck checks tenant and queue names against WithQueues' tree.
type tenantCheck struct {
	tenants map[string]bool
	queueOf map[string]string // queue -> its tenant
}

func (o *options) tenantCheck() *tenantCheck {
	if o.queues == nil {
		return nil
	}
	tc := &tenantCheck{tenants: map[string]bool{}, queueOf: map[string]string{}}
	parent := map[string]string{}
	for _, s := range o.queues {
		parent[s.Name] = s.Parent
		if s.Parent == "" || s.Parent == quota.RootName {
			tc.tenants[s.Name] = true
		}
	}
	for _, s := range o.queues {
		t := s.Name
		for range len(o.queues) {
			p := parent[t]
			if p == "" || p == quota.RootName {
				break
			}
			t = p
		}
		tc.queueOf[s.Name] = t
	}
	return tc
}

func (tc *tenantCheck) tenant(v value, name string) {
	if tc == nil || tc.tenants[name] {
		return
	}
	known := make([]string, 0, len(tc.tenants))
	for t := range tc.tenants {
		known = append(known, t)
	}
	sort.Strings(known)
	v.errorf("%q is not a tenant of the queue tree (want one of %s)", name, strings.Join(known, ", "))
}

func (tc *tenantCheck) queue(v value, tenant, queue string) {
	if tc == nil {
		return
	}
	if t, ok := tc.queueOf[queue]; !ok || t != tenant || queue == tenant {
		v.errorf("%q is not a queue of tenant %q", queue, tenant)
	}
}

// A commitments file:
//
//	kind: commitments
//	commitments:
//	  - id: frontier-h100-2027
//	    tenant: frontier
//	    type: h100
//	    site: us-east          # omit for any site
//	    count: 64
//	    start: 2026-12-01      # a date (midnight UTC) or an RFC 3339 time
//	    end: 2027-12-01
//	    pricePerHour: 1.60     # per accelerator-hour, take-or-pay

var commitmentsFields = []string{"kind", "commitments"}

var commitmentFields = []string{"id", "tenant", "type", "site", "count", "start", "end", "pricePerHour"}

// ParseCommitments reads a commitments file; types are checked against
// WithFleet's catalog and tenants against WithQueues' tree when given.
func ParseCommitments(name string, data []byte, opts ...Option) ([]ledger.Commitment, error) {
	d := newDecoder(name)
	v, ok := singleDoc(d, data, "commitments")
	if !ok {
		return nil, d.err()
	}
	o := makeOptions(opts)
	fs, isMap := v.fields(commitmentsFields...)
	if !isMap {
		return nil, d.err()
	}
	checkKind(fs, KindCommitments)
	cv, ok := fs.need("commitments")
	if !ok {
		return nil, d.err()
	}
	elems, _ := cv.seq()
	tc := o.tenantCheck()
	ids := map[string]string{}
	var out []ledger.Commitment
	for _, e := range elems {
		cfs, isMap := e.fields(commitmentFields...)
		if !isMap {
			continue
		}
		var c ledger.Commitment
		if f, ok := cfs.need("id"); ok {
			c.ID = uniqueName(f, ids)
		}
		if f, ok := cfs.need("tenant"); ok {
			if s, ok := nameValue(f); ok {
				c.Tenant = s
				tc.tenant(f, s)
			}
		}
		if f, ok := cfs.need("type"); ok {
			c.Type = typeValue(f, o.catalog)
		}
		if f, ok := cfs.get("site"); ok {
			if s, ok := f.str(); ok {
				if msg := checkSiteName(s); msg != "" {
					f.errorf("%s", msg)
				}
				c.Site = s
			}
		}
		if f, ok := cfs.need("count"); ok {
			x, _ := f.intIn(1, 10_000_000)
			c.Count = int(x)
		}
		start, end := termValues(cfs, "start", "end", true)
		c.StartMs, c.EndMs = start, end
		if f, ok := cfs.need("pricePerHour"); ok {
			c.PricePerHour, _ = moneyValue(f)
		}
		out = append(out, c)
	}
	if d.failed() {
		return nil, d.err()
	}
	return out, nil
}

// termValues reads a validity: start and end, end after start. Without
// needEnd, a missing end is 0 (never).
func termValues(fs fields, startKey, endKey string, needEnd bool) (int64, int64) {
	var start, end int64
	var sv value
	var hasStart bool
	if needEnd {
		sv, hasStart = fs.need(startKey)
	} else {
		sv, hasStart = fs.get(startKey)
	}
	if hasStart {
		start, hasStart = timeValue(sv)
	}
	var ev value
	var hasEnd bool
	if needEnd {
		ev, hasEnd = fs.need(endKey)
	} else {
		ev, hasEnd = fs.get(endKey)
	}
	if hasEnd {
		var ok bool
		if end, ok = timeValue(ev); ok && (hasStart || !needEnd) && end <= start {
			ev.errorf("%s is not after %s %s", ledger.FormatTime(end), startKey, ledger.FormatTime(start))
		}
	}
	return start, end
}

func nameValue(v value) (string, bool) {
	s, ok := v.str()
	if !ok {
		return "", false
	}
	if msg := checkName(s); msg != "" {
		v.errorf("%s", msg)
		return s, false
	}
	return s, true
}

// uniqueName reads a name that no other entry of the file has.
func uniqueName(v value, seen map[string]string) string {
	s, ok := nameValue(v)
	if !ok {
		return s
	}
	if where, dup := seen[s]; dup {
		v.errorf("%q is already the id of %s", s, where)
		return s
	}
	seen[s] = v.path
	return s
}

func typeValue(v value, cat *fleet.Catalog) string {
	s, ok := v.str()
	if !ok {
		return ""
	}
	if cat.Index(s) < 0 {
		v.errorf("type %q is not in the catalog (want one of %s)", s, typeList(cat))
	}
	return s
}

// A credits file:
//
//	kind: credits
//	grants:
//	  - id: launch-promo
//	    tenant: acme
//	    queue: acme-research   # omit for all of the tenant's queues
//	    kind: promotional      # or prepaid (the default)
//	    amount: 500
//	    start: 2026-12-01      # omit: at once
//	    expires: 2027-03-01    # omit: never
//	budgets:
//	  acme: 2000               # per calendar month

var creditsFields = []string{"kind", "grants", "budgets"}

var grantFields = []string{"id", "tenant", "queue", "kind", "amount", "start", "expires"}

// CreditsFile is a parsed credits file.
type CreditsFile struct {
	Grants  []ledger.Grant
	Budgets []ledger.Budget
}

// ParseCredits reads a credits file; tenants and queues are checked
// against WithQueues' tree when given.
func ParseCredits(name string, data []byte, opts ...Option) (CreditsFile, error) {
	d := newDecoder(name)
	v, ok := singleDoc(d, data, "credits")
	if !ok {
		return CreditsFile{}, d.err()
	}
	o := makeOptions(opts)
	fs, isMap := v.fields(creditsFields...)
	if !isMap {
		return CreditsFile{}, d.err()
	}
	checkKind(fs, KindCredits)
	_, hasGrants := fs.get("grants")
	_, hasBudgets := fs.get("budgets")
	if !hasGrants && !hasBudgets {
		v.errorf("a credits file needs grants, budgets or both")
	}
	tc := o.tenantCheck()
	var out CreditsFile
	if gv, ok := fs.get("grants"); ok {
		elems, _ := gv.seq()
		ids := map[string]string{}
		for _, e := range elems {
			gfs, isMap := e.fields(grantFields...)
			if !isMap {
				continue
			}
			var g ledger.Grant
			if f, ok := gfs.need("id"); ok {
				g.ID = uniqueName(f, ids)
			}
			if f, ok := gfs.need("tenant"); ok {
				if s, ok := nameValue(f); ok {
					g.Tenant = s
					tc.tenant(f, s)
				}
			}
			if f, ok := gfs.get("queue"); ok {
				if s, ok := nameValue(f); ok {
					g.Queue = s
					tc.queue(f, g.Tenant, s)
				}
			}
			if f, ok := gfs.get("kind"); ok {
				if s, ok := f.str(); ok {
					k, err := ledger.ParseGrantKind(s)
					if err != nil {
						f.errorf("%v", err)
					}
					g.Kind = k
				}
			}
			if f, ok := gfs.need("amount"); ok {
				if m, ok := moneyValue(f); ok {
					if m == 0 {
						f.errorf("want an amount above 0")
					}
					g.Amount = m
				}
			}
			g.StartMs, g.ExpiresMs = termValues(gfs, "start", "expires", false)
			out.Grants = append(out.Grants, g)
		}
	}
	if bv, ok := fs.get("budgets"); ok {
		ps, _ := bv.pairs()
		for _, p := range ps {
			if msg := checkName(p.key); msg != "" {
				v.d.add(p.line, p.col, p.val.path, "tenant "+msg)
				continue
			}
			tc.tenant(p.val, p.key)
			m, ok := moneyValue(p.val)
			if ok && m == 0 {
				p.val.errorf("want a monthly amount above 0 (leave the tenant out for none)")
			}
			out.Budgets = append(out.Budgets, ledger.Budget{Tenant: p.key, Monthly: m})
		}
	}
	if d.failed() {
		return CreditsFile{}, d.err()
	}
	// The ledger's own checks, so that what parses can be added.
	l, err := ledger.New(ledger.Config{Catalog: o.catalog})
	if err == nil {
		for _, g := range out.Grants {
			if err := l.AddGrant(g); err != nil {
				d.add(0, 0, "", err.Error())
			}
		}
		for _, b := range out.Budgets {
			if err := l.SetBudget(b); err != nil {
				d.add(0, 0, "", err.Error())
			}
		}
	}
	if d.failed() {
		return CreditsFile{}, d.err()
	}
	return out, nil
}

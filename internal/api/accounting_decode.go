package api

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/gpufleet/gpufleet/internal/fleet"
)

// jsonNumber passes an amount the caller wrote through unchanged; the
// server reads it exactly.
func jsonNumber(s string) json.Number { return json.Number(s) }

// amount reads a decimal amount field exactly.
func amount(field string, n json.Number, positive bool) (Money, *Error) {
	if n == "" {
		return 0, Invalid(field, "missing: want a decimal amount such as 500 or 2.49")
	}
	m, err := ParseAmount(n.String(), false)
	if err != nil {
		return 0, Invalid(field, "%v", err)
	}
	if positive && m == 0 {
		return 0, Invalid(field, "0: want an amount above 0")
	}
	return m, nil
}

// Limits of the accounting objects (the ledger's).
const (
	maxGrantUnits = 1_000_000_000
	maxCommitted  = 10_000_000
)

// DecodeCreateGrant reads and checks a credit grant.
func DecodeCreateGrant(data []byte) (CreateGrant, Money, *Error) {
	var g CreateGrant
	if err := decodeStrict(data, &g); err != nil {
		return g, 0, err
	}
	if g.ID != "" {
		if err := CheckName("id", g.ID); err != nil {
			return g, 0, err
		}
	}
	if err := CheckName("tenant", g.Tenant); err != nil {
		return g, 0, err
	}
	if g.Queue != "" {
		if err := CheckName("queue", g.Queue); err != nil {
			return g, 0, err
		}
	}
	if g.Kind != "" {
		if !slices.Contains(GrantKinds, g.Kind) {
			return g, 0, Invalid("kind", "%q: want prepaid (the default) or promotional", g.Kind)
		}
	}
	m, e := amount("amount", g.Amount, true)
	if e != nil {
		return g, 0, e
	}
	if m > maxGrantUnits*Micro {
		return g, 0, Invalid("amount", "%s: want at most %d", g.Amount, maxGrantUnits)
	}
	if g.Expires != nil && g.Start != nil && !g.Expires.After(*g.Start) {
		return g, 0, Invalid("expires", "%s is not after start %s", g.Expires.UTC().Format("2006-01-02T15:04:05Z"), g.Start.UTC().Format("2006-01-02T15:04:05Z"))
	}
	return g, m, nil
}

// DecodeSetBudget reads a monthly budget (0 removes it).
func DecodeSetBudget(data []byte) (Money, *Error) {
	var b SetBudget
	if err := decodeStrict(data, &b); err != nil {
		return 0, err
	}
	m, e := amount("monthly", b.Monthly, false)
	if e != nil {
		return 0, e
	}
	if m > maxGrantUnits*Micro {
		return 0, Invalid("monthly", "%s: want at most %d", b.Monthly, maxGrantUnits)
	}
	return m, nil
}

// DecodeCreateCommitment reads and checks a commitment.
func DecodeCreateCommitment(data []byte) (CreateCommitment, Money, *Error) {
	var c CreateCommitment
	if err := decodeStrict(data, &c); err != nil {
		return c, 0, err
	}
	if err := CheckName("id", c.ID); err != nil {
		return c, 0, err
	}
	if err := CheckName("tenant", c.Tenant); err != nil {
		return c, 0, err
	}
	cat := fleet.DefaultCatalog()
	if cat.Index(c.Type) < 0 {
		return c, 0, Invalid("type", "%q is not in the catalog (want one of %s)", c.Type, strings.Join(cat.Names(), ", "))
	}
	if c.Site != "" {
		for _, part := range strings.Split(c.Site, "/") {
			if err := CheckName("site", part); err != nil {
				return c, 0, Invalid("site", "%q: want a site's domain path such as us-east/z1, or none for any site", c.Site)
			}
		}
	}
	if c.Count < 1 || c.Count > maxCommitted {
		return c, 0, Invalid("count", "%d: want 1..%d accelerators", c.Count, maxCommitted)
	}
	if c.End.IsZero() {
		return c, 0, Invalid("end", "missing: a commitment needs the end of its term")
	}
	if c.Start != nil && !c.End.After(*c.Start) {
		return c, 0, Invalid("end", "%s is not after start %s", c.End.UTC().Format("2006-01-02T15:04:05Z"), c.Start.UTC().Format("2006-01-02T15:04:05Z"))
	}
	p, e := amount("pricePerHour", c.PricePerHour, false)
	if e != nil {
		return c, 0, e
	}
	if p > 1_000_000*Micro {
		return c, 0, Invalid("pricePerHour", "%s: want at most 1000000 an accelerator-hour", c.PricePerHour)
	}
	return c, p, nil
}

// Amount is an amount as the caller wrote it, for a request body; the
// server reads it exactly.
func Amount(s string) json.Number { return json.Number(s) }

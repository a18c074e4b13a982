package api

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Money is an amount of the server's currency, exact to the micro-unit: a
// JSON number in units with up to six decimals (12.5 is twelve and a
// half). It is never a floating-point number on either side.
type Money int64

// MarshalJSON writes the amount as a decimal number, without trailing
// zeros.
func (m Money) MarshalJSON() ([]byte, error) { return []byte(m.Decimal()), nil }

// Decimal writes the amount in units, exactly, without trailing zeros.
func (m Money) Decimal() string {
	s := fixed(int64(m), 6)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// UnmarshalJSON reads a decimal number exactly.
func (m *Money) UnmarshalJSON(b []byte) error {
	v, err := ParseAmount(string(b), true)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// ParseAmount reads a decimal amount in units ("500", "2.49") exactly, at
// most six decimals; negative amounts only when allowed.
func ParseAmount(s string, negative bool) (Money, error) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		if !negative {
			return 0, fmt.Errorf("%q: want an amount of 0 or more", s)
		}
		s = s[1:]
	}
	v, err := parseMicro(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a decimal amount such as 500 or 2.49 (at most six decimals)", s)
	}
	if neg {
		v = -v
	}
	return Money(v), nil
}

// Format writes the amount rounded to the currency's coin ("12.50").
func (m Money) Format(minorDigits int) string {
	minorDigits = min(max(minorDigits, 0), 6)
	return fixed(round(int64(m), minorDigits), minorDigits)
}

// UsageRow is one line of a usage report: usage of a tenant, queue, tier,
// accelerator type and site (those the report is grouped by; the others
// are empty) over the report's range or one period of it.
type UsageRow struct {
	// Period is the day (2026-12-01) or month (2026-12) of the row when
	// the report is per period.
	Period string `json:"period,omitempty"`
	// Kind is used (metered usage), idle-reserved (committed capacity its
	// commitment left idle, the committer's) or idle (capacity nobody
	// used or reserved); the last two are on reports with the fleet's
	// cost.
	Kind       string `json:"kind"`
	Tenant     string `json:"tenant"`
	Queue      string `json:"queue"`
	Tier       string `json:"tier"`
	Type       string `json:"type"`
	Site       string `json:"site"`
	Commitment string `json:"commitment,omitempty"`
	// AcceleratorMilliMs is accelerator-time exactly, in
	// milli-accelerator-milliseconds (3.6e9 to the accelerator-hour).
	AcceleratorHours   float64 `json:"acceleratorHours"`
	AcceleratorMilliMs int64   `json:"acceleratorMilliMs"`
	// EnergyKWh is at the facility meter (IT energy x PUE); carbon is
	// counted on it.
	EnergyKWh   float64 `json:"energyKWh"`
	ITEnergyKWh float64 `json:"itEnergyKWh"`
	CO2Kg       float64 `json:"co2Kg"`
	// Cost is what the usage is charged: on-demand and spot at their
	// rates, committed-tier time beyond the commitments (Overage) at the
	// on-demand rate. Commitment fees are on invoices.
	Cost    Money `json:"cost"`
	Overage Money `json:"overage"`
	// CommittedHours is committed-tier time its commitments covered.
	CommittedHours float64 `json:"committedHours"`
	// AssetCost is the row's share of the fleet's cost (reports with
	// the fleet's capacity).
	AssetCost Money `json:"assetCost"`
}

// UsageReport is the answer to GET /v1/usage.
type UsageReport struct {
	Currency string `json:"currency"`
	// MinorDigits is the currency's coin (2: cents).
	MinorDigits int        `json:"minorDigits"`
	From        time.Time  `json:"from"`
	To          time.Time  `json:"to"`
	By          []string   `json:"by"`
	Period      string     `json:"period,omitempty"`
	Rows        []UsageRow `json:"rows"`
	Total       UsageRow   `json:"total"`
	// FleetCost is the fleet's asset cost over the range (admins only):
	// the rows' assetCost add up to it exactly.
	FleetCost *Money   `json:"fleetCost,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
}

// UsageQuery narrows a usage report.
type UsageQuery struct {
	Tenant string
	// By lists the dimensions rows are grouped by (tenant, queue, tier,
	// type, site); empty: all five.
	By []string
	// From and To bound the report, [From, To), at UTC midnights; zero:
	// the month so far.
	From, To time.Time
	// Period is "" (one row set for the range), "day" or "month".
	Period string
}

// UsageRecord is one replica's holding of accelerators: closed (To set)
// when it ended, open while it runs (metered up to now).
type UsageRecord struct {
	ID string `json:"id"`
	// Job, Tenant, Queue and Kind say whose holding it was; they are set
	// in the listing of GET /v1/usage/records (a job's own usage names
	// its job and tenant once, above its records). Kind is the job's
	// kind (training, fine-tuning, batch, service).
	Job                string     `json:"job,omitempty"`
	Tenant             string     `json:"tenant,omitempty"`
	Queue              string     `json:"queue,omitempty"`
	Kind               string     `json:"kind,omitempty"`
	Attempt            int        `json:"attempt"`
	Gang               int        `json:"gang"`
	Replica            int        `json:"replica"`
	Node               string     `json:"node"`
	Type               string     `json:"type"`
	Tier               string     `json:"tier"`
	Site               string     `json:"site"`
	Devices            []int      `json:"devices"`
	Milli              int32      `json:"milli"`
	From               time.Time  `json:"from"`
	To                 *time.Time `json:"to,omitempty"`
	End                string     `json:"end,omitempty"`
	AcceleratorMilliMs int64      `json:"acceleratorMilliMs"`
	// IntensityGPerKWh is the grid carbon intensity the scheduler's
	// decision used for this holding (the forecast over its planned run),
	// absent without a forecast; the job's co2Kg is metered on the site's
	// measured intensity.
	IntensityGPerKWh float64 `json:"intensityGPerKWh,omitempty"`
}

// JobUsage is the answer to GET /v1/usage/jobs/{id}: what the ledger
// metered for a job, and the holdings it metered.
type JobUsage struct {
	Job    string `json:"job"`
	Tenant string `json:"tenant"`
	// AcceleratorMilliMs is what the ledger metered for the job, in
	// milli-accelerator-milliseconds; HeldMilliMs is the sum of its
	// records' (To - From) x devices x milli (open ones up to now).
	AcceleratorMilliMs int64         `json:"acceleratorMilliMs"`
	HeldMilliMs        int64         `json:"heldMilliMs"`
	AcceleratorHours   float64       `json:"acceleratorHours"`
	EnergyKWh          float64       `json:"energyKWh"`
	CO2Kg              float64       `json:"co2Kg"`
	Cost               Money         `json:"cost"`
	Currency           string        `json:"currency"`
	Records            []UsageRecord `json:"records"`
}

// Grant is a credit grant with what it has burned.
type Grant struct {
	ID      string     `json:"id" yaml:"id"`
	Tenant  string     `json:"tenant" yaml:"tenant"`
	Queue   string     `json:"queue,omitempty" yaml:"queue,omitempty"`
	Kind    string     `json:"kind" yaml:"kind"`
	Amount  Money      `json:"amount" yaml:"amount"`
	Burned  Money      `json:"burned" yaml:"burned"`
	Left    Money      `json:"left" yaml:"left"`
	Start   time.Time  `json:"start" yaml:"start"`
	Expires *time.Time `json:"expires,omitempty" yaml:"expires,omitempty"`
	// State is pending (not started), active, spent or expired.
	State   string    `json:"state" yaml:"state"`
	Created time.Time `json:"created" yaml:"created"`
}

// Balance is a tenant's (or one of its queues') standing now.
type Balance struct {
	Tenant string `json:"tenant"`
	Queue  string `json:"queue,omitempty"`
	// Postpaid: no credit grants; usage is billed after the fact.
	Postpaid bool `json:"postpaid"`
	// Credits is the spendable balance; BurnRate what running work
	// spends an hour.
	Credits  Money `json:"credits"`
	BurnRate Money `json:"burnRate"`
	// Budget is the monthly budget (absent: none), Spent the month's
	// usage charges so far.
	Budget *Money `json:"budget,omitempty"`
	Spent  Money  `json:"spent"`
	Month  string `json:"month"`
	// Paused is why its admission is paused, while it is.
	Paused string `json:"paused,omitempty"`
}

// CreditEvent is a threshold a grant or budget reached, or a grant
// expiring.
type CreditEvent struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // grant-threshold, grant-expired, budget-threshold
	Tenant  string    `json:"tenant"`
	Queue   string    `json:"queue,omitempty"`
	Grant   string    `json:"grant,omitempty"`
	Month   string    `json:"month,omitempty"`
	Percent int       `json:"percent,omitempty"`
	Limit   Money     `json:"limit"`
	Used    Money     `json:"used"`
	Message string    `json:"message"`
}

// CreditList is the answer to GET /v1/credits.
type CreditList struct {
	Currency    string        `json:"currency"`
	MinorDigits int           `json:"minorDigits"`
	Grants      []Grant       `json:"grants"`
	Balances    []Balance     `json:"balances"`
	Events      []CreditEvent `json:"events"`
}

// CreateGrant is the body of POST /v1/credits. Amount is a decimal number
// in units of the server's currency. Start defaults to now, and a start
// in the past is now: credits never pay for usage metered before they
// were granted. ID defaults to TENANT-N.
type CreateGrant struct {
	ID      string      `json:"id,omitempty"`
	Tenant  string      `json:"tenant"`
	Queue   string      `json:"queue,omitempty"`
	Kind    string      `json:"kind,omitempty"` // prepaid (default) or promotional
	Amount  json.Number `json:"amount"`
	Start   *time.Time  `json:"start,omitempty"`
	Expires *time.Time  `json:"expires,omitempty"`
}

// Budget is a tenant's monthly budget and the month's spend.
type Budget struct {
	Tenant  string `json:"tenant"`
	Monthly Money  `json:"monthly"`
	Spent   Money  `json:"spent"`
	Month   string `json:"month"`
}

// BudgetList is the answer to GET /v1/budgets.
type BudgetList struct {
	Currency    string   `json:"currency"`
	MinorDigits int      `json:"minorDigits"`
	Budgets     []Budget `json:"budgets"`
}

// SetBudget is the body of PUT /v1/budgets/{name}: a monthly budget on a
// tenant's usage charges, 0 to remove it.
type SetBudget struct {
	Monthly json.Number `json:"monthly"`
}

// Commitment is a capacity contract: for its term the tenant has Count
// accelerators of Type in the committed tier and pays for them, used or
// not.
type Commitment struct {
	ID           string    `json:"id"`
	Tenant       string    `json:"tenant"`
	Type         string    `json:"type"`
	Site         string    `json:"site,omitempty"`
	Count        int       `json:"count"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	PricePerHour Money     `json:"pricePerHour"`
	// Fee is the term's take-or-pay fee: count x hours x price.
	Fee Money `json:"fee"`
	// State is upcoming, active or ended.
	State   string    `json:"state"`
	Created time.Time `json:"created"`
}

// CommitmentList is the answer to GET /v1/commitments.
type CommitmentList struct {
	Currency    string       `json:"currency"`
	MinorDigits int          `json:"minorDigits"`
	Commitments []Commitment `json:"commitments"`
}

// CreateCommitment is the body of POST /v1/commitments. Start defaults
// to now; Site empty means any site.
type CreateCommitment struct {
	ID           string      `json:"id"`
	Tenant       string      `json:"tenant"`
	Type         string      `json:"type"`
	Site         string      `json:"site,omitempty"`
	Count        int         `json:"count"`
	Start        *time.Time  `json:"start,omitempty"`
	End          time.Time   `json:"end"`
	PricePerHour json.Number `json:"pricePerHour"`
}

// InvoiceLine is one line of an invoice.
type InvoiceLine struct {
	// Kind is commitment, committed-covered, committed-overage,
	// on-demand, spot or credit.
	Kind             string  `json:"kind"`
	Type             string  `json:"type,omitempty"`
	Site             string  `json:"site,omitempty"`
	Ref              string  `json:"ref,omitempty"`
	AcceleratorHours float64 `json:"acceleratorHours"`
	Rate             Money   `json:"rate"`
	// Amount is exact; Billed is rounded to the currency's coin so that
	// the lines add up to the invoice's Billed.
	Amount Money `json:"amount"`
	Billed Money `json:"billed"`
}

// Invoice is a tenant's bill for a calendar month (UTC).
type Invoice struct {
	Tenant   string `json:"tenant"`
	Month    string `json:"month"`
	Currency string `json:"currency"`
	// MinorDigits is the currency's coin (2: cents).
	MinorDigits int  `json:"minorDigits"`
	Postpaid    bool `json:"postpaid"`
	// Final: the month is over and metered; until then the invoice is
	// the month so far.
	Final bool          `json:"final"`
	Lines []InvoiceLine `json:"lines"`
	// Total = Commitments + Usage - Credits, exact; Billed is Total
	// rounded to the coin.
	Commitments    Money  `json:"commitments"`
	Usage          Money  `json:"usage"`
	Credits        Money  `json:"credits"`
	Total          Money  `json:"total"`
	Billed         Money  `json:"billed"`
	CreditsLeft    Money  `json:"creditsLeft"`
	CreditsExpired Money  `json:"creditsExpired"`
	Budget         *Money `json:"budget,omitempty"`
	Spent          Money  `json:"spent"`
}

package ledger

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Money is an amount in micro-units of the ledger's currency (1,000,000 to
// the dollar, euro or yen). It is never a floating-point number: every
// amount the ledger produces is an integer computed exactly and rounded
// once, by the rules in docs/ACCOUNTING.md.
type Money int64

// Micro is the number of micro-units in one unit of currency.
const Micro = 1_000_000

// Currency names the unit amounts are kept in and how many decimal digits
// its smallest coin has (2 for USD and EUR, 0 for JPY); invoices are
// rounded to that coin.
type Currency struct {
	Code        string
	MinorDigits int
}

// DefaultCurrency is US dollars and cents.
var DefaultCurrency = Currency{Code: "USD", MinorDigits: 2}

// MinorUnit returns the value of the currency's smallest coin in
// micro-units (10,000 for cents).
func (c Currency) MinorUnit() Money {
	u := Money(Micro)
	for range c.MinorDigits {
		u /= 10
	}
	return u
}

func (c Currency) validate() error {
	if len(c.Code) != 3 || strings.ToUpper(c.Code) != c.Code || strings.ContainsAny(c.Code, "0123456789 ") {
		return fmt.Errorf("currency: code %q: want three capital letters such as USD", c.Code)
	}
	if c.MinorDigits < 0 || c.MinorDigits > 6 {
		return fmt.Errorf("currency: minor digits %d: want 0..6", c.MinorDigits)
	}
	return nil
}

// String writes m in units with all six decimals ("12.500000").
func (m Money) String() string {
	return formatFixed(int64(m), 6)
}

// Format writes m in units of c rounded half away from zero to its
// smallest coin ("12.50" for USD).
func (m Money) Format(c Currency) string {
	u := int64(c.MinorUnit())
	v := int64(m)
	neg := v < 0
	if neg {
		v = -v
	}
	v = (v + u/2) / u
	if neg {
		v = -v
	}
	return formatFixed(v, c.MinorDigits)
}

// formatFixed writes v / 10^digits with exactly digits decimals.
func formatFixed(v int64, digits int) string {
	neg := v < 0
	if neg {
		v = -v
	}
	s := strconv.FormatInt(v, 10)
	if digits > 0 {
		if len(s) <= digits {
			s = strings.Repeat("0", digits-len(s)+1) + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// ParseMoney reads a decimal amount in units ("2.49", "1000", "0.000001")
// exactly as micro-units. Negative amounts, more than six decimals and
// amounts of a trillion units or more are refused.
func ParseMoney(s string) (Money, error) {
	v, err := parseFixed(s, 6, 1_000_000_000_000)
	return Money(v), err
}

// parseFixed reads a non-negative decimal with at most digits decimals as
// an integer count of 10^-digits, below maxWhole whole units.
func parseFixed(s string, digits int, maxWhole int64) (int64, error) {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || dot && frac == "" {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	if strings.HasPrefix(whole, "-") {
		return 0, fmt.Errorf("%s must not be negative", s)
	}
	var w int64
	for i := 0; i < len(whole); i++ {
		c := whole[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", s)
		}
		w = w*10 + int64(c-'0')
		if w >= maxWhole {
			return 0, fmt.Errorf("%s is too large (want below %d)", s, maxWhole)
		}
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > digits {
		return 0, fmt.Errorf("%s has more than %d decimals", s, digits)
	}
	var f int64
	for i := range digits {
		f *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("%q is not a decimal number", s)
			}
			f += int64(c - '0')
		}
	}
	scale := int64(1)
	for range digits {
		scale *= 10
	}
	return w*scale + f, nil
}

// Apportion splits total among weights in proportion, by the largest
// remainder method (Hamilton's): each share is the floor of its exact
// quota, and the units left over go one each to the largest fractional
// parts, ties to the earlier weight. The shares add up to total exactly
// and each is within one unit of its quota. Negative weights count as
// zero. ok is false when total is not zero and no weight is positive:
// then there is nothing to split it by, and the caller decides where it
// goes.
func Apportion(total int64, weights []int64) (shares []int64, ok bool) {
	out := make([]int64, len(weights))
	if total == 0 {
		return out, true
	}
	var sum u128
	for _, w := range weights {
		if w > 0 {
			sum = sum.add(u128of(uint64(w)))
		}
	}
	if sum.isZero() {
		return out, false
	}
	neg := total < 0
	t := uint64(total)
	if neg {
		t = uint64(-total)
	}
	// Quotas are t*w/sum; sum fits in 64 bits for every caller (weights
	// are milli-accelerator-milliseconds of one period), checked here.
	if sum.hi != 0 {
		// Scale weights down: the split stays proportional to the
		// nearest representable ratio, and shares still add up.
		return apportionScaled(total, weights)
	}
	s := sum.lo
	type rem struct {
		i int
		r uint64
	}
	rems := make([]rem, 0, len(weights))
	var given uint64
	for i, w := range weights {
		if w <= 0 {
			continue
		}
		q, r := mul64(t, uint64(w)).divmod(s)
		out[i] = q.int64()
		given += q.lo
		rems = append(rems, rem{i, r})
	}
	left := t - given
	slices.SortStableFunc(rems, func(a, b rem) int { return cmp.Compare(b.r, a.r) })
	for k := uint64(0); k < left; k++ {
		out[rems[k].i]++
	}
	if neg {
		for i := range out {
			out[i] = -out[i]
		}
	}
	return out, true
}

func apportionScaled(total int64, weights []int64) ([]int64, bool) {
	scaled := make([]int64, len(weights))
	for i, w := range weights {
		scaled[i] = max(w, 0) >> 8
	}
	return Apportion(total, scaled)
}

// RoundTo rounds each amount to a multiple of unit so that the rounded
// amounts add up to the exact sum rounded half up to unit: each amount is
// first rounded down, and the units that are missing go to the amounts
// with the largest remainders, ties to the earlier amount. Amounts may be
// negative (a credit line). Each result is within one unit of its amount.
func RoundTo(amounts []Money, unit Money) []Money {
	out := make([]Money, len(amounts))
	if unit <= 1 {
		copy(out, amounts)
		return out
	}
	type rem struct {
		i int
		r Money
	}
	rems := make([]rem, len(amounts))
	var sum, floors Money
	for i, a := range amounts {
		f := floorTo(a, unit)
		out[i] = f
		floors += f
		sum += a
		rems[i] = rem{i, a - f}
	}
	target := floorTo(sum+unit/2, unit)
	k := int((target - floors) / unit)
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].r > rems[b].r })
	for j := 0; j < k && j < len(rems); j++ {
		out[rems[j].i] += unit
	}
	return out
}

// floorTo rounds a down to a multiple of unit (towards minus infinity).
func floorTo(a, unit Money) Money {
	f := a / unit * unit
	if f > a {
		f -= unit
	}
	return f
}

// MarshalJSON writes m as a decimal number of units, exactly and without
// trailing zeros (12.5 for twelve and a half).
func (m Money) MarshalJSON() ([]byte, error) {
	s := strings.TrimRight(m.String(), "0")
	return []byte(strings.TrimSuffix(s, ".")), nil
}

// UnmarshalJSON reads a decimal number of units exactly (at most six
// decimals).
func (m *Money) UnmarshalJSON(b []byte) error {
	s := string(b)
	neg := strings.HasPrefix(s, "-")
	v, err := ParseMoney(strings.TrimPrefix(s, "-"))
	if err != nil {
		return err
	}
	if neg {
		v = -v
	}
	*m = v
	return nil
}

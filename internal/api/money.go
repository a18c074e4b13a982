package api

import (
	"fmt"
	"strconv"
	"strings"
)

// The wire's fixed-point amounts. They are the ledger's (ledger.Money,
// ledger.Micro), written here so that the API, which the node agent links,
// does not link the accounting; TestMoneyIsTheLedgers checks they agree.

// Micro is the number of micro-units in one unit of currency.
const Micro = 1_000_000

// maxWholeUnits bounds an amount read from the wire, as the ledger does.
const maxWholeUnits = 1_000_000_000_000

// GrantKinds are the kinds of credit grant, in the ledger's order.
var GrantKinds = []string{"prepaid", "promotional"}

// fixed writes v / 10^digits with exactly digits decimals.
func fixed(v int64, digits int) string {
	neg := v < 0
	u := uint64(v)
	if neg {
		u = uint64(-v)
	}
	s := strconv.FormatUint(u, 10)
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

// parseMicro reads a non-negative decimal with at most six decimals as
// micro-units, below maxWholeUnits whole units.
func parseMicro(s string) (int64, error) {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || dot && frac == "" {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	var w int64
	for i := 0; i < len(whole); i++ {
		c := whole[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", s)
		}
		w = w*10 + int64(c-'0')
		if w >= maxWholeUnits {
			return 0, fmt.Errorf("%s is too large (want below %d)", s, maxWholeUnits)
		}
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 6 {
		return 0, fmt.Errorf("%s has more than 6 decimals", s)
	}
	var f int64
	for i := range 6 {
		f *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("%q is not a decimal number", s)
			}
			f += int64(c - '0')
		}
	}
	return w*Micro + f, nil
}

// round rounds micro-units half away from zero to a currency's coin of
// minorDigits decimals (0..6), in coins.
func round(v int64, minorDigits int) int64 {
	u := int64(1)
	for range 6 - minorDigits {
		u *= 10
	}
	neg := v < 0
	if neg {
		v = -v
	}
	v = (v + u/2) / u
	if neg {
		v = -v
	}
	return v
}

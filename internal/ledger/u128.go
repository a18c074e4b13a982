package ledger

import "math/bits"

// u128 is an unsigned 128-bit integer. Metering multiplies milli-devices,
// milliwatts, percent, PUE and carbon intensity over a day's milliseconds,
// a product that can pass 2^64; computing it exactly is what lets the
// ledger round once per record and day instead of once per metering call.
type u128 struct{ hi, lo uint64 }

func u128of(x uint64) u128 { return u128{lo: x} }

// mul64 returns a*b.
func mul64(a, b uint64) u128 {
	hi, lo := bits.Mul64(a, b)
	return u128{hi, lo}
}

func (x u128) add(y u128) u128 {
	lo, c := bits.Add64(x.lo, y.lo, 0)
	hi, _ := bits.Add64(x.hi, y.hi, c)
	return u128{hi, lo}
}

func (x u128) sub(y u128) u128 {
	lo, b := bits.Sub64(x.lo, y.lo, 0)
	hi, _ := bits.Sub64(x.hi, y.hi, b)
	return u128{hi, lo}
}

// mul returns x*y; the ledger's bounds keep every product below 2^128.
func (x u128) mul(y uint64) u128 {
	hi1, lo := bits.Mul64(x.lo, y)
	hi := x.hi*y + hi1
	return u128{hi, lo}
}

func (x u128) isZero() bool { return x.hi == 0 && x.lo == 0 }

// divmod returns x/d and x%d as a 128-bit quotient and a remainder.
func (x u128) divmod(d uint64) (u128, uint64) {
	qhi := x.hi / d
	r := x.hi % d
	qlo, rem := bits.Div64(r, x.lo, d)
	return u128{qhi, qlo}, rem
}

// div returns x/d.
func (x u128) div(d uint64) u128 {
	q, _ := x.divmod(d)
	return q
}

// int64 returns x as an int64; callers keep x below 2^63.
func (x u128) int64() int64 { return int64(x.lo) }

// roundDiv returns x/d rounded half up, as an int64. d2, when not zero, is
// a second divisor (the quotient is x/(d*d2)): floor(floor(y/a)/b) equals
// floor(y/(a*b)), which lets a divisor above 2^64 be written as two.
func roundDiv(x u128, d, d2 uint64) int64 {
	if d2 == 0 {
		return x.add(u128of(d / 2)).div(d).int64()
	}
	half := mul64(d, d2)
	half = half.div(2)
	return x.add(half).div(d).div(d2).int64()
}

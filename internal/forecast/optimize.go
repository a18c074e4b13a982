package forecast

import (
	"math"
	"slices"
)

// box is a closed interval per parameter.
type box struct{ lo, hi []float64 }

func (b box) clamp(x []float64) {
	for i := range x {
		x[i] = min(max(x[i], b.lo[i]), b.hi[i])
	}
}

// nelderMead minimises f over the box from x0 with the simplex method of
// Nelder and Mead (Computer Journal, 1965) in the standard coefficients
// (reflection 1, expansion 2, contraction 1/2, shrink 1/2); trial points
// outside the box are moved onto its boundary. It stops after maxEval
// evaluations or when the simplex's values agree to a relative 1e-6 and
// its vertices to 1e-4 of the box's widths (tolerances 10,000 times
// tighter left every M4 hourly backtest figure unchanged to the third
// decimal and took 1.5 times as long). It returns the best point and its
// value.
//
// gonum's optimize.NelderMead would do, but optimize.Minimize runs every
// method on goroutines of its own and reads the wall clock, which this
// package must not.
func nelderMead(f func([]float64) float64, x0 []float64, b box, maxEval int) ([]float64, float64) {
	n := len(x0)
	pts := make([][]float64, n+1)
	vals := make([]float64, n+1)
	pts[0] = slices.Clone(x0)
	b.clamp(pts[0])
	vals[0] = f(pts[0])
	evals := 1
	for i := 0; i < n; i++ {
		p := slices.Clone(pts[0])
		step := 0.1 * (b.hi[i] - b.lo[i])
		if p[i]+step > b.hi[i] {
			step = -step
		}
		p[i] += step
		b.clamp(p)
		pts[i+1], vals[i+1] = p, f(p)
		evals++
	}
	order := make([]int, n+1)
	centroid := make([]float64, n)
	trial := func(t float64, worst []float64) ([]float64, float64) {
		p := make([]float64, n)
		for i := range p {
			p[i] = centroid[i] + t*(worst[i]-centroid[i])
		}
		b.clamp(p)
		evals++
		return p, f(p)
	}
	for evals < maxEval {
		for i := range order {
			order[i] = i
		}
		slices.SortStableFunc(order, func(a, c int) int { return cmpFloat(vals[a], vals[c]) })
		best, worst, second := order[0], order[n], order[n-1]
		if converged(pts, vals, best, worst, b) {
			break
		}
		clear(centroid)
		for _, k := range order[:n] {
			for i := range centroid {
				centroid[i] += pts[k][i] / float64(n)
			}
		}
		r, fr := trial(-1, pts[worst])
		switch {
		case fr < vals[best]:
			if e, fe := trial(-2, pts[worst]); fe < fr {
				pts[worst], vals[worst] = e, fe
			} else {
				pts[worst], vals[worst] = r, fr
			}
		case fr < vals[second]:
			pts[worst], vals[worst] = r, fr
		default:
			t := 0.5 // inside contraction
			if fr < vals[worst] {
				t = -0.5 // outside contraction
			}
			if c, fc := trial(t, pts[worst]); fc < min(fr, vals[worst]) {
				pts[worst], vals[worst] = c, fc
				continue
			}
			for _, k := range order[1:] {
				for i := range pts[k] {
					pts[k][i] = pts[best][i] + 0.5*(pts[k][i]-pts[best][i])
				}
				vals[k] = f(pts[k])
				evals++
			}
		}
	}
	best := 0
	for i := range vals {
		if cmpFloat(vals[i], vals[best]) < 0 {
			best = i
		}
	}
	return pts[best], vals[best]
}

func converged(pts [][]float64, vals []float64, best, worst int, b box) bool {
	fb, fw := vals[best], vals[worst]
	if math.IsInf(fw, 1) || math.IsNaN(fw) {
		return false
	}
	if fw-fb > 1e-6*(math.Abs(fb)+1e-30) {
		return false
	}
	for _, p := range pts {
		for i := range p {
			if math.Abs(p[i]-pts[best][i]) > 1e-4*(b.hi[i]-b.lo[i]) {
				return false
			}
		}
	}
	return true
}

// cmpFloat orders numbers ascending with NaN last, so a point whose
// objective could not be computed never counts as the best.
func cmpFloat(a, b float64) int {
	switch {
	case math.IsNaN(a) && math.IsNaN(b):
		return 0
	case math.IsNaN(a):
		return 1
	case math.IsNaN(b):
		return -1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// goldenGrid minimises a function of one variable on [lo, hi]: it
// evaluates a grid of points, then narrows the bracket around the best of
// them by golden-section search. The grid guards against the local minima
// that a smoothing parameter's error curve can have.
func goldenGrid(f func(float64) float64, lo, hi float64, grid int) (float64, float64) {
	bestX, bestF := lo, math.Inf(1)
	step := (hi - lo) / float64(grid-1)
	for i := range grid {
		x := lo + float64(i)*step
		if v := f(x); cmpFloat(v, bestF) < 0 {
			bestX, bestF = x, v
		}
	}
	a, c := max(lo, bestX-step), min(hi, bestX+step)
	const g = 0.6180339887498949
	x1, x2 := c-g*(c-a), a+g*(c-a)
	f1, f2 := f(x1), f(x2)
	for c-a > 1e-6*(hi-lo) {
		if cmpFloat(f1, f2) < 0 {
			c, x2, f2 = x2, x1, f1
			x1 = c - g*(c-a)
			f1 = f(x1)
		} else {
			a, x1, f1 = x1, x2, f2
			x2 = a + g*(c-a)
			f2 = f(x2)
		}
	}
	for _, p := range []struct{ x, v float64 }{{x1, f1}, {x2, f2}} {
		if cmpFloat(p.v, bestF) < 0 {
			bestX, bestF = p.x, p.v
		}
	}
	return bestX, bestF
}

package place

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refFrag is the paper's node fragmentation written out class by class, as
// its simulator computes it, to check the closed form in frag.go against.
func refFrag(m *fragModel, accel string, cpu int64, free []int32) float64 {
	var g int64
	for _, f := range free {
		g += int64(f)
	}
	total := 0.0
	for _, c := range m.classes {
		switch {
		case c.milli == 0, accel == "", !acceptsSpec(c.accel, accel):
			total += c.p * float64(g)
			continue
		}
		fit, small := 0, int64(0)
		for _, f := range free {
			if f >= c.milli {
				fit++
			} else {
				small += int64(f)
			}
		}
		if fit >= c.count && cpu >= c.cpu {
			total += c.p * float64(small)
		} else {
			total += c.p * float64(g)
		}
	}
	return total
}

func TestFragMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	types := []string{"G2", "T4", "V100M16"}
	var reqs []Request
	for range 200 {
		r := Request{CPUMilli: int64(rng.IntN(8)) * 4000}
		switch rng.IntN(4) {
		case 0:
		case 1:
			r.Milli = int32(1 + rng.IntN(999))
		default:
			r.Devices = 1 << rng.IntN(4)
		}
		if r.GPUMilli() > 0 && rng.IntN(3) == 0 {
			r.Accel = types[:1+rng.IntN(2)]
		}
		reqs = append(reqs, r)
	}
	m := newFragModel(NewWorkload(reqs), fragOptions{coverage: 0.95})
	for range 2000 {
		accel := types[rng.IntN(len(types))]
		free := make([]int32, 1+rng.IntN(8))
		for i := range free {
			free[i] = int32(rng.IntN(1001))
		}
		cpu := int64(rng.IntN(40)) * 1000
		got, want := m.forType(accel).frag(cpu, 0, free), refFrag(m, accel, cpu, free)
		if math.Abs(got-want) > 1e-6*math.Max(1, want) {
			t.Fatalf("frag(%s, cpu %d, %v) = %v, want %v", accel, cpu, free, got, want)
		}
	}
}

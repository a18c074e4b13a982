package plan

import (
	"fmt"
	"math"
	"testing"

	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/ledger"
)

// usageRecords draws records of a few jobs, tenants, kinds and types:
// whole and fractional devices, open and closed, some without a type.
func usageRecords(t *rapid.T) []ledger.Usage {
	n := rapid.IntRange(0, 30).Draw(t, "records")
	us := make([]ledger.Usage, n)
	for i := range us {
		job := rapid.IntRange(0, 5).Draw(t, "job")
		from := rapid.Int64Range(0, 200).Draw(t, "from") * 60_000
		u := ledger.Usage{ID: fmt.Sprint(i), Job: fmt.Sprintf("j%d", job), Tenant: fmt.Sprintf("t%d", job%2), Kind: []string{"training", "batch"}[job%2],
			Type: rapid.SampledFrom([]string{"", "h100", "h200"}).Draw(t, "type"), Gang: rapid.IntRange(0, 1).Draw(t, "gang"),
			Replica: rapid.IntRange(0, 2).Draw(t, "replica"), Devices: rapid.IntRange(0, 8).Draw(t, "devices"),
			Milli: rapid.SampledFrom([]int32{0, 250, 500, 1000}).Draw(t, "milli"), FromMs: from}
		if !rapid.Bool().Draw(t, "open") {
			u.ToMs, u.End = from+rapid.Int64Range(0, 300).Draw(t, "minutes")*60_000, "finished"
		}
		us[i] = u
	}
	return us
}

// heldHours is the accelerator-hours the records of a type held in
// [from, to), open ones up to to.
func heldHours(us []ledger.Usage, from, to int64) float64 {
	total := 0.0
	for _, u := range us {
		if u.Type == "" || u.Devices <= 0 {
			continue
		}
		end := u.ToMs
		if u.Open() {
			end = to
		}
		lo, hi := max(u.FromMs, from), min(end, to)
		if hi <= lo {
			continue
		}
		milli := u.Milli
		if milli <= 0 {
			milli = 1000
		}
		total += float64(u.Devices) * float64(milli) / 1000 * float64(hi-lo) / 3_600_000
	}
	return total
}

// Accelerator-hours in equal accelerator-hours out: the jobs FromUsage
// makes carry the records' work to the last bit, and a metered history
// holds exactly what the records held inside its steps.
func TestUsageKeepsTheAcceleratorHours(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		us := usageRecords(t)
		now := int64(600 * 60_000)
		jobs := FromUsage(us, now)
		out := 0.0
		for _, j := range jobs {
			if !(j.Accels > 0) || !(j.Hours > 0) {
				t.Fatalf("job %+v without work", j)
			}
			out += j.Accels * j.Hours
		}
		if in := heldHours(us, 0, now); math.Abs(in-out) > 1e-9*max(1, in) {
			t.Fatalf("jobs carry %v accelerator-hours, the records held %v", out, in)
		}

		from := rapid.Int64Range(0, 300).Draw(t, "window from") * 60_000
		steps := rapid.Int64Range(1, 12).Draw(t, "steps")
		step := rapid.SampledFrom([]int64{900, 3600}).Draw(t, "step")
		to := from + steps*step*1000 + rapid.Int64Range(0, step*1000-1).Draw(t, "past the last step")
		h, err := MeteredHistory(us, step, from, to)
		if err != nil {
			t.Fatal(err)
		}
		got := 0.0
		for _, s := range h.Series {
			if int64(len(s.Values)) != steps {
				t.Fatalf("series %s has %d steps, want %d", s.Key, len(s.Values), steps)
			}
			for _, v := range s.Values {
				got += v
			}
		}
		if want := heldHours(us, from, from+steps*step*1000); math.Abs(got-want) > 1e-9*max(1, want) {
			t.Fatalf("history holds %v accelerator-hours, the records held %v in its steps", got, want)
		}
	})
}

package ledger

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"
)

// TestApportionInto: the allocation-free apportionment settlement uses
// gives Apportion's shares.
func TestApportionInto(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ws := rapid.SliceOfN(rapid.Int64Range(-5, 1<<40), 0, 16).Draw(t, "weights")
		total := rapid.Int64Range(0, 1<<40).Draw(t, "total")
		var out []int64
		var rems []uint64
		got := apportionInto(&out, &rems, total, ws)
		want, ok := Apportion(total, ws)
		if !ok {
			want = make([]int64, len(ws))
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("apportionInto vs Apportion (-want +got):\n%s", diff)
		}
	})
}

// TestU128: the 128-bit helpers agree with the identities metering relies
// on.
func TestU128(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := rapid.Uint64().Draw(t, "a")
		b := rapid.Uint64().Draw(t, "b")
		c := rapid.Uint64Range(1, 1<<40).Draw(t, "c")
		d := rapid.Uint64Range(1, 1<<40).Draw(t, "d")
		x := mul64(a, b)
		q, r := x.divmod(c)
		if got := q.mul(c).add(u128of(r)); got != x {
			t.Fatalf("(%d*%d)/%d: q*c+r = %v, want %v", a, b, c, got, x)
		}
		// floor(floor(x/c)/d) == floor(x/(c*d)) when c*d fits.
		if c*d/d == c {
			if got, want := x.div(c).div(d), x.div(c*d); got != want {
				t.Fatalf("two-step division %v, want %v", got, want)
			}
		}
		if x.sub(u128of(r)).add(u128of(r)) != x {
			t.Fatal("sub/add")
		}
	})
}

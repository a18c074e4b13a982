package api

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/ledger"
)

// The wire's amounts are the ledger's: the same text for the same
// micro-units, rounded alike to any coin, and read back alike, error for
// error. (The API keeps its own copy so that the agent, which links the
// API, does not link the accounting.)
func TestMoneyIsTheLedgers(t *testing.T) {
	if Micro != ledger.Micro {
		t.Fatalf("Micro %d, the ledger's %d", Micro, ledger.Micro)
	}
	var kinds []string
	for k := ledger.GrantKind(0); ; k++ {
		if _, err := ledger.ParseGrantKind(k.String()); err != nil || slices.Contains(kinds, k.String()) {
			break
		}
		kinds = append(kinds, k.String())
	}
	if !slices.Equal(GrantKinds, kinds) {
		t.Errorf("grant kinds %v, the ledger's %v", GrantKinds, kinds)
	}
	rapid.Check(t, func(t *rapid.T) {
		m := rapid.Int64Range(-1<<62, 1<<62).Draw(t, "micro")
		digits := rapid.IntRange(0, 6).Draw(t, "digits")
		if got, want := fixed(m, 6), ledger.Money(m).String(); got != want {
			t.Fatalf("%d: %q, the ledger's %q", m, got, want)
		}
		if got, want := Money(m).Format(digits), ledger.Money(m).Format(ledger.Currency{Code: "XXX", MinorDigits: digits}); got != want {
			t.Fatalf("%d to %d digits: %q, the ledger's %q", m, digits, got, want)
		}
		s := rapid.OneOf(
			rapid.Just(ledger.Money(max(m, 0)%(1_000_000_000_000*ledger.Micro)).String()),
			rapid.StringMatching(`[0-9]{0,14}(\.[0-9]{0,8})?`),
			rapid.StringMatching(`[-+ 0-9.eE]{0,10}`),
		).Draw(t, "text")
		got, gerr := parseMicro(s)
		want, werr := ledger.ParseMoney(s)
		if (gerr == nil) != (werr == nil) || got != int64(want) {
			t.Fatalf("%q: %d (%v), the ledger's %d (%v)", s, got, gerr, want, werr)
		}
	})
}

func ExampleMoney_Format() {
	fmt.Println(Money(12_345_678).Format(2), Money(-5_000).Format(2), Money(2_490_000).Decimal())
	// Output: 12.35 -0.01 2.49
}

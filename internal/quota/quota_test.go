package quota

import (
	"strings"
	"testing"
)

func ptr(v int64) *int64 { return &v }

func tree(t *testing.T, specs []Spec) *Tree {
	t.Helper()
	q, err := New(specs)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// Two teams of 8 under one tenant; team a lends at most 4; team b may
// borrow at most 2 beyond its nominal.
func twoTeams(t *testing.T) *Tree {
	return tree(t, []Spec{
		{Name: "acme"},
		{Name: "a", Parent: "acme", Quotas: map[string]Limits{"h100": {Nominal: 8000, Lend: ptr(4000)}}},
		{Name: "b", Parent: "acme", Quotas: map[string]Limits{"h100": {Nominal: 8000, Borrow: ptr(2000)}}},
	})
}

func TestCheck(t *testing.T) {
	tests := map[string]struct {
		use    map[string]int64 // usage to record first, per queue
		queue  string
		amount int64
		refuse string // substring of the refusal, "" for admitted
		within bool
	}{
		"within nominal":               {queue: "b", amount: 8000},
		"borrow up to the limit":       {queue: "b", amount: 10000},
		"above the borrowing limit":    {queue: "b", amount: 10001, refuse: "above nominal 8 + borrowing limit 2"},
		"lending limit caps a's loan":  {use: map[string]int64{"b": 8000}, queue: "b", amount: 2000},
		"a takes all b lends":          {queue: "a", amount: 16000},
		"a beyond the pool":            {queue: "a", amount: 16001, refuse: "pool"},
		"a within its nominal is owed": {use: map[string]int64{"b": 10000}, queue: "a", amount: 8000, refuse: "other queues borrow it", within: true},
		"a within nominal, b not over": {use: map[string]int64{"b": 8000}, queue: "a", amount: 8000},
		"b over limit while a is busy": {use: map[string]int64{"a": 8000}, queue: "b", amount: 8001, refuse: "pool"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			q := twoTeams(t)
			f := q.FlavorIndex("h100")
			for name, v := range tc.use {
				q.Add(q.Queue(name), Demand{f: v})
			}
			r := q.Check(q.Queue(tc.queue), Demand{f: tc.amount})
			switch {
			case tc.refuse == "" && r != nil:
				t.Fatalf("refused: %s", r.Text())
			case tc.refuse != "" && r == nil:
				t.Fatalf("admitted, want a refusal with %q", tc.refuse)
			case r != nil && !strings.Contains(r.Text(), tc.refuse):
				t.Fatalf("refusal %q, want it to contain %q", r.Text(), tc.refuse)
			case r != nil && r.WithinNominal != tc.within:
				t.Fatalf("WithinNominal = %v, want %v", r.WithinNominal, tc.within)
			}
		})
	}
}

func TestOccupationHoldsUnlentNominal(t *testing.T) {
	q := twoTeams(t)
	f := q.FlavorIndex("h100")
	// a is idle but lends only 4 of its 8: the tenant holds 4 for it.
	if got := q.Occupation(q.Queue("acme"), f); got != 4000 {
		t.Fatalf("tenant occupation = %d, want 4000", got)
	}
	q.Add(q.Queue("b"), Demand{f: 10000})
	if got := q.Occupation(q.Queue("acme"), f); got != 14000 {
		t.Fatalf("tenant occupation = %d, want 14000", got)
	}
	if got := q.Borrowing(q.Queue("b"), f); got != 2000 {
		t.Fatalf("b borrowing = %d, want 2000", got)
	}
	q.Add(q.Queue("b"), Demand{f: -10000})
	if got := q.Occupation(q.Queue("acme"), f); got != 4000 {
		t.Fatalf("after release, tenant occupation = %d, want 4000", got)
	}
}

func TestNominalDefaultsToChildren(t *testing.T) {
	q := twoTeams(t)
	f := q.FlavorIndex("h100")
	if got := q.Nominal(q.Queue("acme"), f); got != 16000 {
		t.Fatalf("tenant nominal = %d, want 16000", got)
	}
	if got := q.Nominal(0, f); got != 16000 {
		t.Fatalf("root pool = %d, want 16000", got)
	}
	if err := q.SetLimits(q.Queue("b"), "h100", Limits{Nominal: 12000}); err != nil {
		t.Fatal(err)
	}
	if got := q.Nominal(0, f); got != 20000 {
		t.Fatalf("root pool after raising b = %d, want 20000", got)
	}
}

func TestShareIsWeighted(t *testing.T) {
	q := tree(t, []Spec{
		{Name: "acme"},
		{Name: "a", Parent: "acme", Weight: 3, Quotas: map[string]Limits{"h100": {Nominal: 8000}}},
		{Name: "b", Parent: "acme", Weight: 1, Quotas: map[string]Limits{"h100": {Nominal: 8000}}},
	})
	f := q.FlavorIndex("h100")
	q.Add(q.Queue("a"), Demand{f: 3000})
	q.Add(q.Queue("b"), Demand{f: 1000})
	if a, b := q.Share(q.Queue("a")), q.Share(q.Queue("b")); a != b {
		t.Fatalf("shares a=%v b=%v, want equal (3 GPUs at weight 3, 1 at weight 1)", a, b)
	}
}

func TestNewErrors(t *testing.T) {
	tests := map[string]struct {
		specs []Spec
		want  string
	}{
		"duplicate":  {[]Spec{{Name: "a"}, {Name: "a"}}, `queues[1].name: "a" is defined twice`},
		"empty name": {[]Spec{{Name: ""}}, "queues[0].name: must not be empty"},
		"parent":     {[]Spec{{Name: "a", Parent: "x"}}, `queues[0].parent: queue "x" is not declared`},
		"lend above": {[]Spec{{Name: "a", Quotas: map[string]Limits{"h100": {Nominal: 1000, Lend: ptr(2000)}}}}, "queues[0].quotas.h100: lendingLimit 2000: want 0..nominal (1000)"},
		"negative":   {[]Spec{{Name: "a", Quotas: map[string]Limits{"h100": {Nominal: -1}}}}, "nominal -1: must not be negative"},
		"weight":     {[]Spec{{Name: "a", Weight: -1}}, "queues[0].weight: -1 must not be negative"},
		"cycle":      {[]Spec{{Name: "a", Parent: "b"}, {Name: "b", Parent: "a"}}, "cycle"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := New(tc.specs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

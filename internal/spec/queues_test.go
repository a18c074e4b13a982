package spec

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
)

func milli(v int64) *int64 { return &v }

func TestParseQueuesGood(t *testing.T) {
	got, err := ParseQueues("queues/small.yaml", readTestdata(t, "queues/small.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []quota.Spec{
		{Name: "acme", Weight: 2, Quotas: map[string]quota.Limits{
			"h100":      {Nominal: 64000, Borrow: milli(32000), Lend: milli(16000)},
			"h100:spot": {Nominal: 8500},
		}},
		{Name: "acme-batch", Parent: "acme", Quotas: map[string]quota.Limits{"h100": {Nominal: 48000}}},
		{Name: "acme-serve", Parent: "acme", Strict: true, Weight: 0.5, Quotas: map[string]quota.Limits{
			"h100": {Nominal: 16000, Lend: milli(0)},
		}},
		{Name: "beta", Quotas: map[string]quota.Limits{"h200": {Nominal: 500}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseQueues (-want +got):\n%s", diff)
	}
}

// queues is a valid queues file to which test cases append.
const queues = `tenants:
  - name: acme
    quotas:
      h100: {nominal: 64, lendingLimit: 16}
    queues:
      - name: acme-a
        quotas: {h100: 32}
`

func TestParseQueuesErrors(t *testing.T) {
	tests := map[string]struct {
		src  string
		want string
	}{
		"lending above nominal": {
			src:  strings.Replace(queues, "lendingLimit: 16", "lendingLimit: 80", 1),
			want: `queues.yaml:4:41: tenants[0].quotas.h100.lendingLimit: 80 is above nominal 64`,
		},
		"unknown type": {
			src:  strings.Replace(queues, "{h100: 32}", "{h1000: 32}", 1),
			want: `queues.yaml:7:18: tenants[0].queues[0].quotas.h1000: flavor "h1000": type "h1000" is not in the catalog (want one of h100, h200, b200, a100, l40s, mi300x; write TYPE or TYPE:TIER)`,
		},
		"bad tier": {
			src:  strings.Replace(queues, "{h100: 32}", "{\"h100:\": 32}", 1),
			want: `queues.yaml:7:18: tenants[0].queues[0].quotas.h100:: flavor "h100:": tier must not be empty`,
		},
		"too fine": {
			src:  strings.Replace(queues, "{h100: 32}", "{h100: 0.0001}", 1),
			want: `queues.yaml:7:24: tenants[0].queues[0].quotas.h100: 0.0001 has more than 3 decimals`,
		},
		"negative": {
			src:  strings.Replace(queues, "{h100: 32}", "{h100: {nominal: 1, borrowingLimit: -1}}", 1),
			want: `queues.yaml:7:53: tenants[0].queues[0].quotas.h100.borrowingLimit: -1 must not be negative`,
		},
		"quota a string": {
			src:  strings.Replace(queues, "{h100: 32}", "{h100: {nominal: \"32\"}}", 1),
			want: `queues.yaml:7:34: tenants[0].queues[0].quotas.h100.nominal: want a number of accelerators, got a string`,
		},
		"missing nominal": {
			src:  strings.Replace(queues, "{h100: 32}", "{h100: {lendingLimit: 3}}", 1),
			want: `queues.yaml:7:24: tenants[0].queues[0].quotas.h100.nominal: is required`,
		},
		"children above parent": {
			src:  queues + "      - name: acme-b\n        quotas: {h100: 40}\n",
			want: `queues.yaml:4:23: tenants[0].quotas.h100.nominal: 64 is below the sum of its queues' nominal quotas (72)`,
		},
		"name twice": {
			src:  queues + "  - name: acme-a\n",
			want: `queues.yaml:8:11: tenants[1].name: "acme-a" is already the name of tenants[0].queues[0]; queue names are unique across tenants`,
		},
		"root": {
			src:  queues + "  - name: root\n",
			want: `queues.yaml:8:11: tenants[1].name: "root" is reserved for the root of the queue tree`,
		},
		"zero weight": {
			src:  queues + "  - {name: b, weight: 0}\n",
			want: `queues.yaml:8:23: tenants[1].weight: 0, want above 0 and at most 1000000`,
		},
		"unknown field": {
			src:  queues + "  - {name: b, nominal: 3}\n",
			want: `queues.yaml:8:15: tenants[1].nominal: unknown field (want one of name, weight, strict, quotas, queues)`,
		},
		"wrong kind": {
			src:  "kind: fleet\n" + queues,
			want: `queues.yaml:1:7: kind: "fleet": a queues file has kind queues`,
		},
		"no tenants": {
			src:  "kind: queues\n",
			want: `queues.yaml:1:1: tenants: is required`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseQueues("queues.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("ParseQueues succeeded, want error %q", tt.want)
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseQueuesWithFleet(t *testing.T) {
	cat, err := fleet.NewCatalog([]fleet.AccelType{{Name: "tpu-v5p", RelSpeed: 1}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := fleet.New(cat, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseQueues("q.yaml", []byte("tenants: [{name: a, quotas: {\"tpu-v5p:spot\": 4}}]\n"), WithFleet(f)); err != nil {
		t.Errorf("ParseQueues: %v", err)
	}
	_, err = ParseQueues("q.yaml", []byte(queues), WithFleet(f))
	want := `q.yaml:4:7: tenants[0].quotas.h100: flavor "h100": type "h100" is not in the catalog (want one of tpu-v5p; write TYPE or TYPE:TIER)`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %v, want it to start with %q", err, want)
	}
}

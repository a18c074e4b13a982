package serve

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestProfiles pins the built-in profiles: the reference model on the
// fewest devices (a power of two) that hold it with room for the decode
// operating point. The figures follow from the datasheets by the
// arithmetic of Derive (docs/SERVICES.md works the h200 case by hand).
func TestProfiles(t *testing.T) {
	want := map[string]Profile{
		"a100":   {Accelerator: "a100", Devices: 4, PrefillTokensPerSec: 3535, DecodeTokensPerSec: 35.1, MaxSeqs: 256, KVTokens: 423583},
		"b200":   {Accelerator: "b200", Devices: 1, PrefillTokensPerSec: 6374, DecodeTokensPerSec: 34.4, MaxSeqs: 256, KVTokens: 90332},
		"h100":   {Accelerator: "h100", Devices: 4, PrefillTokensPerSec: 11207, DecodeTokensPerSec: 57.7, MaxSeqs: 256, KVTokens: 423583},
		"h200":   {Accelerator: "h200", Devices: 2, PrefillTokensPerSec: 5603, DecodeTokensPerSec: 41.3, MaxSeqs: 256, KVTokens: 331420},
		"l40s":   {Accelerator: "l40s", Devices: 4, PrefillTokensPerSec: 4102, DecodeTokensPerSec: 14.9, MaxSeqs: 256, KVTokens: 72021},
		"mi300x": {Accelerator: "mi300x", Devices: 1, PrefillTokensPerSec: 3703, DecodeTokensPerSec: 22.8, MaxSeqs: 256, KVTokens: 90332},
	}
	got := map[string]Profile{}
	for _, a := range Accelerators() {
		p, err := ProfileFor(a)
		if err != nil {
			t.Fatalf("%s: %v", a, err)
		}
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", a, err)
		}
		got[a] = p
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("profiles (-want +got):\n%s", diff)
	}
}

func TestDerive(t *testing.T) {
	h200 := Datasheets[2]
	tests := map[string]struct {
		hw      Hardware
		devices int
		want    Profile
		err     string
	}{
		// Twice the devices: twice the prefill, the weights' read split in
		// two, the KV cache grows by a whole device's share.
		"h200 x4": {hw: h200, devices: 4, want: Profile{Accelerator: "h200", Devices: 4, PrefillTokensPerSec: 11207, DecodeTokensPerSec: 82.6, MaxSeqs: 256, KVTokens: 1093750}},
		"h200 x1": {hw: h200, devices: 1, err: "profile: llama-3.1-70b does not fit on 1 h200 (141 GB)"},
		"none":    {hw: h200, devices: 0, err: "profile: devices 0: want 1 to 64"},
	}
	for name, tc := range tests {
		got, err := Derive(tc.hw, Llama31_70B, tc.devices)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%s: error %v, want %q", name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	if _, err := ProfileFor("tpu"); err == nil || err.Error() != `accelerator "tpu": want one of a100, b200, h100, h200, l40s, mi300x` {
		t.Errorf("unknown accelerator: %v", err)
	}
}

func TestProfileValidate(t *testing.T) {
	ok := Profile{Accelerator: "h200", Devices: 2, PrefillTokensPerSec: 1, DecodeTokensPerSec: 1, MaxSeqs: 1, KVTokens: 1}
	tests := map[string]struct {
		mut  func(*Profile)
		want string
	}{
		"no name":    {func(p *Profile) { p.Accelerator = "" }, "profile: accelerator is empty"},
		"devices":    {func(p *Profile) { p.Devices = 0 }, "profile h200: devices 0: want 1 to 64"},
		"prefill":    {func(p *Profile) { p.PrefillTokensPerSec = math.NaN() }, "profile h200: prefill tokens/s NaN: want a positive number"},
		"decode":     {func(p *Profile) { p.DecodeTokensPerSec = -1 }, "profile h200: decode tokens/s per sequence -1: want a positive number"},
		"sequences":  {func(p *Profile) { p.MaxSeqs = 0 }, "profile h200: max sequences 0: want at least 1"},
		"kv":         {func(p *Profile) { p.KVTokens = 0 }, "profile h200: KV cache tokens 0: want at least 1"},
		"inf decode": {func(p *Profile) { p.DecodeTokensPerSec = math.Inf(1) }, "profile h200: decode tokens/s per sequence +Inf: want a positive number"},
	}
	for name, tc := range tests {
		p := ok
		tc.mut(&p)
		if err := p.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid profile: %v", err)
	}
}

func TestLoadTest(t *testing.T) {
	p := Profile{Accelerator: "x", Devices: 1, PrefillTokensPerSec: 5000, DecodeTokensPerSec: 50, MaxSeqs: 256, KVTokens: 1 << 20}
	tests := map[string]struct {
		reqs     []Request
		inFlight float64
	}{
		// 5 requests/s of 1,000 tokens keep prefill busy; each stays 0.2 s
		// in prefill and 99/50 s generating: 5 x 2.18 = 10.9 in flight.
		"chat": {[]Request{{Prompt: 1000, Output: 100}}, 10.9},
		// Long prompts, one token out: prefill alone, one in flight.
		"prefill only": {[]Request{{Prompt: 4000, Output: 1}, {Prompt: 6000, Output: 1}}, 1},
		// Long generations hit the sequence limit.
		"decode bound": {[]Request{{Prompt: 10, Output: 10000}}, 256},
	}
	for name, tc := range tests {
		in, tokens := LoadTest(p, tc.reqs)
		if math.Abs(in-tc.inFlight) > 1e-9 || tokens != 5000 {
			t.Errorf("%s: LoadTest = %g in flight, %g tokens/s; want %g, 5000", name, in, tokens, tc.inFlight)
		}
	}
}

func TestColdStarts(t *testing.T) {
	c := AlibabaColdStarts
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// The published figures of the measurements (README of the trace).
	tests := map[float64]time.Duration{
		0: 1329 * time.Millisecond, 0.5: 22718 * time.Millisecond, 0.9: 41988 * time.Millisecond,
		0.99: 51846 * time.Millisecond, 1: 79436 * time.Millisecond,
		0.995: 53768 * time.Millisecond, 0.9975: 56354 * time.Millisecond, // 5/8 of the way from p99.5 to p99.9
	}
	for q, want := range tests {
		if got := c.Quantile(q); got != want {
			t.Errorf("quantile %g: %s, want %s", q, got, want)
		}
	}
	if got := Fixed(30 * time.Second).Quantile(0.7); got != 30*time.Second {
		t.Errorf("fixed: %s", got)
	}
	bad := ColdStarts{Points: [][2]float64{{0, 5}, {50, 4}, {100, 6}}}
	if err := bad.Validate(); err == nil {
		t.Error("falling times accepted")
	}
}

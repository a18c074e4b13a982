package serve

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/autoscale"
)

func ms2(v int) time.Duration { return time.Duration(v) * time.Millisecond }

// tinyProfile prefills 1,000 tokens/s and generates 10 tokens/s a
// sequence, two sequences at once.
var tinyProfile = Profile{Accelerator: "h200", Devices: 2, PrefillTokensPerSec: 1000, DecodeTokensPerSec: 10, MaxSeqs: 2, KVTokens: 5000}

func tinyConfig(policy string) Config {
	return Config{
		Profile: tinyProfile, Policy: policy, SLO: 1200 * time.Millisecond, Target: 0.6,
		Spec:       autoscale.Spec{MinReplicas: 1, MaxReplicas: 4, TargetInFlight: 2, TargetTokensPerSecond: 1000, Latency: 1200 * time.Millisecond, ScaleDownGrace: 10 * time.Second, ColdStart: 5 * time.Second},
		ColdStarts: Fixed(5 * time.Second), Seed: 1, Interval: time.Second, QueueTimeout: time.Minute, InitialReplicas: 1,
	}
}

// TestEngineByHand follows four requests through one replica, worked out
// by hand:
//
//	r0 arrives at 0, prompt 1,000: prefill 0-1 s (TTFT 1 s), 10 more tokens
//	   until 2 s.
//	r1 arrives at 0.5 s, prompt 500: waits for the prefill engine, 1-1.5 s
//	   (TTFT 1 s), then generates until 1.5 s (one token: done at once).
//	r2 arrives at 0.6 s, prompt 100, 11 tokens out: prefill 1.5-1.6 s
//	   (TTFT 1 s), generates until 2.6 s.
//	r3 arrives at 0.7 s, prompt 100: both sequence slots are taken until r0
//	   ends at 2 s; prefill 2-2.1 s (TTFT 1.4 s, over the 1.2 s SLO).
//	r4 asks for more KV cache (6,000 tokens) than a replica has: dropped.
func TestEngineByHand(t *testing.T) {
	reqs := []Request{
		{Arrival: 0, Prompt: 1000, Output: 11},
		{Arrival: ms2(500), Prompt: 500, Output: 1},
		{Arrival: ms2(600), Prompt: 100, Output: 11},
		{Arrival: ms2(700), Prompt: 100, Output: 1},
		{Arrival: ms2(800), Prompt: 5000, Output: 1000},
	}
	cfg := tinyConfig(PolicyStatic)
	e, n := runStatic(reqs, cfg)
	if n != 1 {
		t.Fatalf("static chose %d replicas, want 1 (3 of 5 meet the SLO, the target is 60%%)", n)
	}
	if diff := cmp.Diff([]time.Duration{ms2(1000), ms2(1000), ms2(1000), ms2(1400), -1}, e.ttft); diff != "" {
		t.Errorf("TTFT (-want +got):\n%s", diff)
	}
	r := summarize(e, cfg)
	want := &Result{Policy: PolicyStatic, Requests: 5, Met: 3, Dropped: 1, TTFTp50: ms2(1000), TTFTp99: ms2(1400),
		GPUTime: 2 * ms2(2600), Duration: ms2(2600), ByMinute: []float64{0.04}, TargetMet: true}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
}

// TestColdStartWait: a request that finds no replica waits for one to
// load; its TTFT includes the cold start.
func TestColdStartWait(t *testing.T) {
	cfg := tinyConfig("gpufleet")
	cfg.Spec.MinReplicas, cfg.InitialReplicas = 0, 0
	r, err := Run([]Request{{Arrival: 0, Prompt: 100, Output: 1}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Asked for at the first observation (t=0), ready 5 s later, prefill
	// 0.1 s.
	if r.TTFTp50 != ms2(5100) || r.Met != 0 || r.ColdStarts != 1 || r.LoadingTime != 2*5*time.Second {
		t.Errorf("result: %+v", r)
	}
}

func TestOracleMeetsEachMinute(t *testing.T) {
	reqs := loadSlice(t, "azure_code_400.csv")
	cfg := defaultConfig(t, reqs, PolicyOracle)
	e, _ := runOracle(reqs, cfg)
	lo := 0
	for m := 0; lo < len(reqs); m++ {
		hi := lo
		for hi < len(reqs) && reqs[hi].Arrival < time.Duration(m+1)*time.Minute {
			hi++
		}
		if got, _ := e.met(lo, hi); !enough(got, hi-lo, cfg.Target) {
			t.Errorf("minute %d: %d of %d met", m, got, hi-lo)
		}
		lo = hi
	}
}

func loadSlice(t testing.TB, name string) []Request {
	t.Helper()
	reqs, err := Load(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return reqs
}

// defaultConfig is what sim serve runs with no flags.
func defaultConfig(t testing.TB, reqs []Request, policy string) Config {
	t.Helper()
	prof, err := ProfileFor(DefaultAccelerator)
	if err != nil {
		t.Fatal(err)
	}
	inFlight, tokens := LoadTest(prof, reqs)
	return Config{
		Profile: prof, Policy: policy, SLO: DefaultSLO, Target: DefaultTarget,
		Spec: autoscale.Spec{MinReplicas: 1, MaxReplicas: 64, TargetInFlight: inFlight, TargetTokensPerSecond: tokens,
			Latency: DefaultSLO, ScaleDownGrace: 30 * time.Second, ColdStart: AlibabaColdStarts.Quantile(0.9)},
		ColdStarts: AlibabaColdStarts, Seed: DefaultSeed, Interval: DefaultInterval, QueueTimeout: DefaultQueueTimeout, InitialReplicas: 1,
	}
}

// TestDeterministic: every policy, run twice on the same trace and seed,
// gives the same result.
func TestDeterministic(t *testing.T) {
	reqs := loadSlice(t, "azure_conv_400.csv")
	for _, p := range Policies() {
		a, err := Run(reqs, defaultConfig(t, reqs, p))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Run(reqs, defaultConfig(t, reqs, p))
		if diff := cmp.Diff(a, b); diff != "" {
			t.Errorf("%s: two runs differ (-first +second):\n%s", p, diff)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := map[string]struct {
		mut  func(*Config)
		want string
	}{
		"policy":   {func(c *Config) { c.Policy = "hpa" }, `policy "hpa": want one of gpufleet, kpa, oracle, static`},
		"slo":      {func(c *Config) { c.SLO = 0 }, "SLO 0s: want a positive duration"},
		"target":   {func(c *Config) { c.Target = 1.5 }, "target 1.5: want a share above 0 and at most 1"},
		"interval": {func(c *Config) { c.Interval = 0 }, "interval 0s: want 1ms to 1m"},
		"timeout":  {func(c *Config) { c.QueueTimeout = 0 }, "queue timeout 0s: want a positive duration"},
		"initial":  {func(c *Config) { c.InitialReplicas = 9 }, "initial replicas 9: want 0 to maxReplicas (4)"},
		"spec":     {func(c *Config) { c.Spec.MaxReplicas = 0 }, "service: maxReplicas 0: want 1 to 100000"},
		"profile":  {func(c *Config) { c.Profile.MaxSeqs = 0 }, "profile h200: max sequences 0: want at least 1"},
		"cold":     {func(c *Config) { c.ColdStarts = ColdStarts{} }, "cold starts: want at least 2 percentile points, got 0"},
	}
	for name, tc := range tests {
		c := tinyConfig("gpufleet")
		tc.mut(&c)
		if err := c.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if _, err := Run(nil, tinyConfig("gpufleet")); err == nil {
		t.Error("an empty trace ran")
	}
}

// TestPropertyRuns: on random small traces, under any policy, every
// request is accounted for exactly once, GPU time covers at least the
// replicas' loading, gpufleet never removes a replica still loading, and
// more static replicas never meet fewer requests.
func TestPropertyRuns(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 120).Draw(t, "requests")
		reqs := make([]Request, n)
		at := time.Duration(0)
		for i := range reqs {
			at += time.Duration(rapid.IntRange(0, 3000).Draw(t, "gap")) * time.Millisecond
			reqs[i] = Request{Arrival: at, Prompt: rapid.IntRange(1, 3000).Draw(t, "prompt"), Output: rapid.IntRange(1, 40).Draw(t, "output")}
		}
		cfg := tinyConfig(rapid.SampledFrom(Policies()).Draw(t, "policy"))
		cfg.Spec.MinReplicas = rapid.IntRange(0, 1).Draw(t, "min")
		cfg.ColdStarts = AlibabaColdStarts
		cfg.Seed = rapid.Uint64().Draw(t, "seed")
		r, err := Run(reqs, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if r.Requests != n || r.Met+r.Dropped > n {
			t.Fatalf("accounting: %+v", r)
		}
		if r.GPUTime < r.LoadingTime || r.Duration < reqs[n-1].Arrival {
			t.Fatalf("time: %+v", r)
		}
		if cfg.Policy == "gpufleet" && r.KilledStarting != 0 {
			t.Fatalf("gpufleet removed %d replicas while they loaded", r.KilledStarting)
		}
		prev := -1
		for k := 1; k <= 4; k++ {
			e, _ := runAutoscaled(reqs, cfg, autoscale.Static{N: k}, k, true)
			m, resolved := e.met(0, n)
			if !resolved {
				t.Fatalf("static %d left requests unresolved", k)
			}
			if m < prev {
				t.Fatalf("static %d meets %d, static %d met %d", k, m, k-1, prev)
			}
			prev = m
		}
	})
}

func BenchmarkRun(b *testing.B) {
	// An hour of conversation traffic: the 400-request slice tiled 50
	// times, 20,000 requests.
	slice := loadSlice(b, "azure_conv_400.csv")
	span := slice[len(slice)-1].Arrival + time.Second
	var reqs []Request
	for k := range 50 {
		for _, r := range slice {
			r.Arrival += time.Duration(k) * span
			reqs = append(reqs, r)
		}
	}
	for _, p := range Policies() {
		b.Run(p, func(b *testing.B) {
			cfg := defaultConfig(b, reqs, p)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Run(reqs, cfg); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(reqs))*float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}

package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/autoscale"
	"github.com/gpufleet/gpufleet/internal/sim/serve"
)

func init() {
	simSubcommands = append(simSubcommands, newSimServeCmd)
}

type simServeFlags struct {
	requests, policy, accelerator, coldStart string
	slo, grace, queueTimeout, interval       time.Duration
	attainment                               float64
	minReplicas, maxReplicas, initial        int
	targetInFlight, targetTokens             float64
	prefill, decode                          float64
	maxSeqs, kvTokens, devices               int
	seed                                     uint64
	asJSON                                   bool
}

func newSimServeCmd() *cobra.Command {
	var f simServeFlags
	c := &cobra.Command{
		Use:   "serve [--requests FILE]",
		Short: "Replay an LLM request trace through an autoscaled inference service",
		Long: `serve replays an inference request trace (the Azure LLM inference CSV,
TIMESTAMP,ContextTokens,GeneratedTokens, or JSON Lines with timestamp in
milliseconds, input_length and output_length) through one service whose
replicas an autoscaling policy adds and removes, on a virtual clock, and
reports how many first tokens came within the SLO and the GPU-hours spent.

Replicas follow a performance model of the accelerator (prefill tokens/s,
decode tokens/s per sequence, sequence and KV cache limits); cold starts are
drawn from Alibaba's measured model-loading latencies (--cold-start alibaba)
or fixed (--cold-start 30s). Policies: gpufleet (the default), kpa
(Knative's defaults), static (the smallest fixed count that meets the
objective) and oracle (each minute what it needs, with no cold start: a
bound, not a policy to run). Without --requests it replays an embedded
sample: the first ten minutes of the Azure conversation trace. See
docs/SERVICES.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			var reqs []serve.Request
			name := f.requests
			if name == "" {
				name = serve.SampleName
				reqs, err = serve.Sample()
			} else {
				reqs, err = serve.Load(f.requests)
			}
			if err != nil {
				return err
			}
			inFlight, tokens := serve.LoadTest(cfg.Profile, reqs)
			if !cmd.Flags().Changed("target-inflight") {
				cfg.Spec.TargetInFlight = math.Round(inFlight*100) / 100
			}
			if !cmd.Flags().Changed("target-tokens") {
				cfg.Spec.TargetTokensPerSecond = tokens
			}
			res, err := serve.Run(reqs, cfg)
			if err != nil {
				return err
			}
			if f.asJSON {
				return writeServeJSON(cmd.OutOrStdout(), cfg, res)
			}
			writeServeSummary(cmd.OutOrStdout(), name, cfg, res)
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.requests, "requests", "", "request trace: Azure LLM inference CSV or JSON Lines (timestamp ms, input_length, output_length); default: the embedded sample")
	fl.StringVar(&f.policy, "policy", autoscale.DefaultPolicy, "autoscaling policy, one of "+strings.Join(serve.Policies(), ", "))
	fl.DurationVar(&f.slo, "slo-ttft", serve.DefaultSLO, "time-to-first-token objective (queueing, cold start and prefill included)")
	fl.Float64Var(&f.attainment, "slo-attainment", 100*serve.DefaultTarget, "percent of requests that must meet --slo-ttft (static and oracle size for it)")
	fl.StringVar(&f.accelerator, "accelerator", serve.DefaultAccelerator, "replica accelerator type, one of "+strings.Join(serve.Accelerators(), ", "))
	fl.IntVar(&f.devices, "devices", 0, "override: accelerators per replica (GPU-hours count each)")
	fl.Float64Var(&f.prefill, "prefill-tps", 0, "override: replica prefill throughput, prompt tokens/s")
	fl.Float64Var(&f.decode, "decode-tps", 0, "override: decode speed per sequence, tokens/s")
	fl.IntVar(&f.maxSeqs, "max-seqs", 0, "override: sequences a replica runs at once")
	fl.IntVar(&f.kvTokens, "kv-tokens", 0, "override: KV cache capacity of a replica, tokens")
	fl.IntVar(&f.minReplicas, "min-replicas", 1, "service floor; 0 scales to zero when idle")
	fl.IntVar(&f.maxReplicas, "max-replicas", 64, "service ceiling")
	fl.IntVar(&f.initial, "initial-replicas", 1, "replicas serving when the trace starts (autoscaled policies)")
	fl.Float64Var(&f.targetInFlight, "target-inflight", 0, "target in-flight requests per replica (default: a load test's figure for this trace and replica, by Little's law)")
	fl.Float64Var(&f.targetTokens, "target-tokens", 0, "target prompt tokens/s per replica (default: the replica's prefill throughput)")
	fl.DurationVar(&f.grace, "scale-down-grace", 30*time.Second, "how long capacity goes unneeded before it is removed")
	fl.StringVar(&f.coldStart, "cold-start", "alibaba", "cold-start distribution: alibaba (measured model loads) or a fixed duration such as 30s")
	fl.DurationVar(&f.queueTimeout, "queue-timeout", serve.DefaultQueueTimeout, "drop a request that waits this long for a replica")
	fl.DurationVar(&f.interval, "interval", serve.DefaultInterval, "autoscaler observation period")
	fl.Uint64Var(&f.seed, "seed", serve.DefaultSeed, "seed of the cold-start draws")
	fl.BoolVar(&f.asJSON, "json", false, "print one JSON object")
	return c
}

// config builds the simulation from the flags; the targets are filled in
// once the trace is read.
func (f *simServeFlags) config(cmd *cobra.Command) (serve.Config, error) {
	prof, err := serve.ProfileFor(f.accelerator)
	if err != nil {
		return serve.Config{}, fmt.Errorf("--accelerator: %w", err)
	}
	changed := cmd.Flags().Changed
	if changed("devices") {
		if prof, err = serve.ProfileOn(f.accelerator, f.devices); err != nil {
			return serve.Config{}, fmt.Errorf("--devices: %w", err)
		}
	}
	for name, set := range map[string]func(){
		"prefill-tps": func() { prof.PrefillTokensPerSec = f.prefill },
		"decode-tps":  func() { prof.DecodeTokensPerSec = f.decode },
		"max-seqs":    func() { prof.MaxSeqs = f.maxSeqs },
		"kv-tokens":   func() { prof.KVTokens = f.kvTokens },
	} {
		if changed(name) {
			set()
		}
	}
	if err := prof.Validate(); err != nil {
		return serve.Config{}, err
	}
	cold := serve.AlibabaColdStarts
	if f.coldStart != "alibaba" {
		d, err := time.ParseDuration(f.coldStart)
		if err != nil || d < 0 {
			return serve.Config{}, fmt.Errorf("--cold-start %q: want alibaba or a duration such as 30s", f.coldStart)
		}
		cold = serve.Fixed(d)
	}
	if !(f.attainment > 0 && f.attainment <= 100) {
		return serve.Config{}, fmt.Errorf("--slo-attainment %g: want a percent above 0 and at most 100", f.attainment)
	}
	spec := autoscale.Spec{
		MinReplicas: f.minReplicas, MaxReplicas: f.maxReplicas,
		TargetInFlight: f.targetInFlight, TargetTokensPerSecond: f.targetTokens,
		Latency: f.slo, LatencyQuantile: min(f.attainment/100, 0.9999), ScaleDownGrace: f.grace,
		// What the operator knows of the model before any replica has
		// started here: the measured distribution's 90th percentile.
		ColdStart: cold.Quantile(0.9),
	}
	if !changed("target-inflight") {
		spec.TargetInFlight = 1 // replaced by the load test's figure
	}
	cfg := serve.Config{
		Profile: prof, Spec: spec, Policy: f.policy, SLO: f.slo, Target: f.attainment / 100,
		ColdStarts: cold, Seed: f.seed, Interval: f.interval, QueueTimeout: f.queueTimeout,
		InitialReplicas: f.initial,
	}
	if err := cfg.Validate(); err != nil {
		return serve.Config{}, serveFlagError(err)
	}
	return cfg, nil
}

// serveFlagError names the flag behind a configuration error.
func serveFlagError(err error) error {
	msg := err.Error()
	for prefix, flag := range map[string]string{
		"service: minReplicas": "--min-replicas", "service: maxReplicas": "--max-replicas",
		"service: targetInFlight": "--target-inflight", "service: targetTokensPerSecond": "--target-tokens",
		"service: latency": "--slo-ttft", "service: scaleDownGrace": "--scale-down-grace",
		"policy": "--policy", "SLO": "--slo-ttft", "interval": "--interval",
		"queue timeout": "--queue-timeout", "initial replicas": "--initial-replicas",
	} {
		if strings.HasPrefix(msg, prefix) {
			return fmt.Errorf("%s: %w", flag, err)
		}
	}
	return err
}

type serveJSON struct {
	Policy           string        `json:"policy"`
	Requests         int           `json:"requests"`
	Met              int           `json:"met"`
	SLOAttainmentPct float64       `json:"slo_attainment_pct"`
	SLOTTFTSeconds   float64       `json:"slo_ttft_s"`
	TargetPct        float64       `json:"target_pct"`
	TargetMet        bool          `json:"target_met"`
	TTFTP50          float64       `json:"ttft_p50_s"`
	TTFTP99          float64       `json:"ttft_p99_s"`
	GPUHours         float64       `json:"gpu_hours"`
	LoadingGPUHours  float64       `json:"loading_gpu_hours"`
	ColdStarts       int           `json:"cold_starts"`
	KilledStarting   int           `json:"killed_starting"`
	ColdStartP50     float64       `json:"cold_start_p50_s"`
	ColdStartP99     float64       `json:"cold_start_p99_s"`
	Dropped          int           `json:"dropped"`
	PeakReplicas     int           `json:"peak_replicas"`
	StaticReplicas   int           `json:"static_replicas,omitempty"`
	DurationSeconds  float64       `json:"duration_s"`
	Accelerator      string        `json:"accelerator"`
	Profile          serve.Profile `json:"profile"`
	Service          serviceJSON   `json:"service"`
	ReplicasByMinute []float64     `json:"replicas_by_minute"`
}

type serviceJSON struct {
	MinReplicas      int     `json:"min_replicas"`
	MaxReplicas      int     `json:"max_replicas"`
	TargetInFlight   float64 `json:"target_inflight"`
	TargetTokens     float64 `json:"target_tokens_per_s"`
	LatencySeconds   float64 `json:"latency_s"`
	LatencyQuantile  float64 `json:"latency_quantile"`
	GraceSeconds     float64 `json:"scale_down_grace_s"`
	ColdStartSeconds float64 `json:"cold_start_prior_s"`
	InitialReplicas  int     `json:"initial_replicas"`
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func writeServeJSON(w io.Writer, cfg serve.Config, r *serve.Result) error {
	return json.NewEncoder(w).Encode(serveJSON{
		Policy: r.Policy, Requests: r.Requests, Met: r.Met,
		SLOAttainmentPct: round(r.AttainmentPct(), 3), SLOTTFTSeconds: cfg.SLO.Seconds(),
		TargetPct: round(100*cfg.Target, 3), TargetMet: r.TargetMet,
		TTFTP50: round(r.TTFTp50.Seconds(), 4), TTFTP99: round(r.TTFTp99.Seconds(), 4),
		GPUHours: round(r.GPUHours(), 4), LoadingGPUHours: round(r.LoadingTime.Hours(), 4),
		ColdStarts: r.ColdStarts, KilledStarting: r.KilledStarting,
		ColdStartP50: round(r.ColdStartP50.Seconds(), 3), ColdStartP99: round(r.ColdStartP99.Seconds(), 3),
		Dropped: r.Dropped, PeakReplicas: r.PeakReplicas, StaticReplicas: r.Static,
		DurationSeconds: round(r.Duration.Seconds(), 3), Accelerator: cfg.Profile.Accelerator,
		Profile: cfg.Profile, ReplicasByMinute: r.ByMinute,
		Service: serviceJSON{
			MinReplicas: cfg.Spec.MinReplicas, MaxReplicas: cfg.Spec.MaxReplicas,
			TargetInFlight: cfg.Spec.TargetInFlight, TargetTokens: cfg.Spec.TargetTokensPerSecond,
			LatencySeconds: cfg.Spec.Latency.Seconds(), LatencyQuantile: cfg.Spec.LatencyQuantile,
			GraceSeconds: cfg.Spec.ScaleDownGrace.Seconds(), ColdStartSeconds: round(cfg.Spec.ColdStart.Seconds(), 3),
			InitialReplicas: cfg.InitialReplicas,
		},
	})
}

func writeServeSummary(w io.Writer, path string, cfg serve.Config, r *serve.Result) {
	fmt.Fprintf(w, "policy %s on %s: %d requests over %.1f min\n", r.Policy, path, r.Requests, r.Duration.Minutes())
	p := cfg.Profile
	fmt.Fprintf(w, "replica: %d x %s, prefill %.0f tokens/s, decode %.1f tokens/s a sequence, %d sequences, %d KV tokens\n",
		p.Devices, p.Accelerator, p.PrefillTokensPerSec, p.DecodeTokensPerSec, p.MaxSeqs, p.KVTokens)
	s := cfg.Spec
	fmt.Fprintf(w, "service: replicas %d..%d, target %.2f in flight and %.0f prompt tokens/s a replica, scale-down grace %s\n",
		s.MinReplicas, s.MaxReplicas, s.TargetInFlight, s.TargetTokensPerSecond, s.ScaleDownGrace)
	verdict := "met"
	if !r.TargetMet {
		verdict = "NOT met"
	}
	fmt.Fprintf(w, "SLO: first token within %s for %.2f%% of requests (%d of %d; target %.4g%% %s)\n",
		cfg.SLO, r.AttainmentPct(), r.Met, r.Requests, 100*cfg.Target, verdict)
	fmt.Fprintf(w, "TTFT: p50 %.3fs, p99 %.3fs; dropped %d\n", r.TTFTp50.Seconds(), r.TTFTp99.Seconds(), r.Dropped)
	fmt.Fprintf(w, "GPU-hours: %.3f (%.3f loading models); peak %d replicas", r.GPUHours(), r.LoadingTime.Hours(), r.PeakReplicas)
	if r.Policy == serve.PolicyStatic {
		fmt.Fprintf(w, "; static count %d", r.Static)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "cold starts: %d (killed while loading %d); load time p50 %.1fs, p99 %.1fs\n",
		r.ColdStarts, r.KilledStarting, r.ColdStartP50.Seconds(), r.ColdStartP99.Seconds())
	if len(r.ByMinute) > 0 {
		mins := make([]string, len(r.ByMinute))
		for i, v := range r.ByMinute {
			mins[i] = strconv.FormatFloat(v, 'f', 1, 64)
		}
		fmt.Fprintf(w, "replicas by minute: %s\n", strings.Join(mins, " "))
	}
}

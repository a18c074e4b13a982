package autoscale_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/gpufleet/gpufleet/internal/autoscale"
)

// TestScenarios runs the scenario files under testdata/scenarios: a
// service spec, a policy, then observations and the decisions they give.
// Regenerate expectations with -rewrite and review the diff.
//
//	spec min=1 max=10 inflight=4 tokens=5000 latency=2s grace=30s cold=40s
//	policy gpufleet
//	observe t=0..59 ready=1 arrivals=2 prompt=2000 inflight=1 queued=0 starting=0s,5s coldstarts=20s
//
// An observation with a range of times (t=A..B, in seconds, step 1) is
// made at each of them; the output lists the decisions that differ from
// the one before, and the last.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, filepath.Join("testdata", "scenarios"), func(t *testing.T, path string) {
		s := &scenario{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := s.run(d)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
}

type scenario struct {
	spec   autoscale.Spec
	policy autoscale.Policy
}

func (s *scenario) run(d *datadriven.TestData) (string, error) {
	switch d.Cmd {
	case "spec":
		s.spec = autoscale.Spec{MaxReplicas: 10, TargetInFlight: 1}
		for _, a := range d.CmdArgs {
			v := strings.Join(a.Vals, ",")
			var err error
			switch a.Key {
			case "min":
				s.spec.MinReplicas, err = strconv.Atoi(v)
			case "max":
				s.spec.MaxReplicas, err = strconv.Atoi(v)
			case "inflight":
				s.spec.TargetInFlight, err = strconv.ParseFloat(v, 64)
			case "tokens":
				s.spec.TargetTokensPerSecond, err = strconv.ParseFloat(v, 64)
			case "latency":
				s.spec.Latency, err = time.ParseDuration(v)
			case "quantile":
				s.spec.LatencyQuantile, err = strconv.ParseFloat(v, 64)
			case "grace":
				s.spec.ScaleDownGrace, err = time.ParseDuration(v)
			case "cold":
				s.spec.ColdStart, err = time.ParseDuration(v)
			default:
				return "", fmt.Errorf("spec: unknown argument %q", a.Key)
			}
			if err != nil {
				return "", fmt.Errorf("spec %s: %w", a.Key, err)
			}
		}
		if err := s.spec.Validate(); err != nil {
			return "", err
		}
		return "ok\n", nil
	case "policy":
		if len(d.CmdArgs) != 1 {
			return "", fmt.Errorf("usage: policy NAME")
		}
		p, err := autoscale.New(d.CmdArgs[0].Key, s.spec)
		if err != nil {
			return "", err
		}
		s.policy = p
		return "ok\n", nil
	case "observe":
		return s.observe(d)
	}
	return "", fmt.Errorf("unknown command %q", d.Cmd)
}

func (s *scenario) observe(d *datadriven.TestData) (string, error) {
	if s.policy == nil {
		return "", fmt.Errorf("observe before policy")
	}
	var o autoscale.Observation
	o.Concurrency = -1
	from, to := 0, 0
	for _, a := range d.CmdArgs {
		v := strings.Join(a.Vals, ",")
		var err error
		switch a.Key {
		case "t":
			lo, hi, isRange := strings.Cut(v, "..")
			if from, err = strconv.Atoi(lo); err == nil {
				to = from
				if isRange {
					to, err = strconv.Atoi(hi)
				}
			}
		case "ready":
			o.Ready, err = strconv.Atoi(v)
		case "inflight":
			o.InFlight, err = strconv.Atoi(v)
		case "queued":
			o.Queued, err = strconv.Atoi(v)
		case "conc":
			o.Concurrency, err = strconv.ParseFloat(v, 64)
		case "arrivals":
			o.Arrivals, err = strconv.Atoi(v)
		case "prompt":
			o.PromptTokens, err = strconv.ParseInt(v, 10, 64)
		case "queuedtokens":
			o.QueuedPromptTokens, err = strconv.ParseInt(v, 10, 64)
		case "starting":
			o.Starting, err = durations(a.Vals)
		case "coldstarts":
			o.ColdStarts, err = durations(a.Vals)
		default:
			return "", fmt.Errorf("observe: unknown argument %q", a.Key)
		}
		if err != nil {
			return "", fmt.Errorf("observe %s: %w", a.Key, err)
		}
	}
	var b strings.Builder
	var prev autoscale.Decision
	for t := from; t <= to; t++ {
		o.Now = time.Duration(t) * time.Second
		dec := s.policy.Step(o)
		if t == from || dec != prev || t == to {
			fmt.Fprintf(&b, "t=%d desired=%d mode=%s victims=%s\n", t, dec.Desired, dec.Mode, dec.Victims)
		}
		prev = dec
		o.ColdStarts = nil // measured once
	}
	return b.String(), nil
}

func durations(vals []string) ([]time.Duration, error) {
	var out []time.Duration
	for _, v := range vals {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

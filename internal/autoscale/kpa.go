package autoscale

import (
	"math"
	"time"
)

// Knative Serving's autoscaler defaults (config-autoscaler), which the kpa
// policy models.
const (
	KPAStableWindow      = 60 * time.Second
	KPAPanicWindow       = 6 * time.Second // 10% of the stable window
	KPAPanicThreshold    = 2.0             // 200% of the target
	KPATargetUtilization = 0.7
	KPAScaleToZeroGrace  = 30 * time.Second
	KPAMaxScaleUpRate    = 1000.0
	KPAMaxScaleDownRate  = 2.0
)

// KPA is Knative's Pod Autoscaler as its defaults configure it, a baseline
// that looks at concurrency only. Following knative.dev/serving
// pkg/autoscaler/scaling/autoscaler.go (Scale) and
// pkg/reconciler/autoscaling/kpa/scaler.go (handleScaleToZero):
//
//   - The metric is concurrency (in-flight plus queued requests), averaged
//     over a 60 s stable window and a 6 s panic window of one-second
//     samples (fewer while the history is shorter).
//   - The target per replica is TargetInFlight x 70%.
//   - Desired in each window is ceil(average / target), kept within
//     [floor(ready / 2), ceil(1000 x ready)], with ready counted as at least
//     one. Replicas still starting are not counted as ready.
//   - Panic starts when the panic window's desired count reaches 200% of
//     the ready replicas, is extended while it stays there, and ends once
//     the stable window has passed without it; while panicking the count
//     takes the larger of the two windows' and never falls.
//   - A desired count of zero holds one replica for the 30 s
//     scale-to-zero grace first (the stable window has by then seen no
//     traffic for 60 s).
//   - A new autoscaler over more than one ready replica starts panicking,
//     so that it does not scale down before it has a history.
//
// Knative does not look at tokens, cold starts or trends, and the
// Deployment it drives removes not-ready pods first, so scaling down can
// kill replicas still loading their model (Victims: StartingFirst).
type KPA struct {
	spec   Spec
	target float64

	samples []float64 // one concurrency sample per observation, newest last
	started bool

	panicking    bool
	panicTime    time.Duration
	maxPanicPods int

	zeroing   bool
	zeroSince time.Duration
}

// NewKPA builds the kpa policy for a service.
func NewKPA(s Spec) *KPA {
	return &KPA{spec: s, target: s.TargetInFlight * KPATargetUtilization}
}

const kpaStableSamples = int(KPAStableWindow / time.Second)
const kpaPanicSamples = int(KPAPanicWindow / time.Second)

// Step implements Policy.
func (k *KPA) Step(o Observation) Decision {
	k.samples = append(k.samples, o.concurrency())
	if len(k.samples) > kpaStableSamples {
		k.samples = k.samples[len(k.samples)-kpaStableSamples:]
	}
	if !k.started {
		k.started = true
		if o.Ready > 1 {
			k.panicking, k.panicTime, k.maxPanicPods = true, o.Now, o.Ready
		}
	}
	stable, panicAvg := tailMean(k.samples, kpaStableSamples), tailMean(k.samples, kpaPanicSamples)

	ready := math.Max(1, float64(o.Ready))
	maxUp := math.Ceil(KPAMaxScaleUpRate * ready)
	maxDown := math.Floor(ready / KPAMaxScaleDownRate)
	dspc := math.Ceil(stable / k.target)
	dppc := math.Ceil(panicAvg / k.target)
	desiredStable := int(math.Min(math.Max(dspc, maxDown), maxUp))
	desiredPanic := int(math.Min(math.Max(dppc, maxDown), maxUp))

	over := dppc/ready >= KPAPanicThreshold
	switch {
	case !k.panicking && over:
		k.panicking, k.panicTime = true, o.Now
	case over:
		k.panicTime = o.Now
	case k.panicking && o.Now > k.panicTime+KPAStableWindow:
		k.panicking, k.maxPanicPods = false, 0
	}

	d := Decision{Desired: desiredStable, Mode: Stable, Victims: StartingFirst}
	if k.panicking {
		d.Mode = Panic
		want := max(desiredStable, desiredPanic)
		k.maxPanicPods = max(k.maxPanicPods, want)
		d.Desired = k.maxPanicPods
	}

	d.Desired = min(max(d.Desired, k.spec.MinReplicas), k.spec.MaxReplicas)
	if d.Desired != 0 {
		k.zeroing = false
		return d
	}
	// Scale to zero only after the grace, holding one replica until then.
	if !k.zeroing {
		k.zeroing, k.zeroSince = true, o.Now
	}
	d.Mode = Idle
	if o.Now-k.zeroSince < KPAScaleToZeroGrace {
		d.Desired = 1
	}
	return d
}

// tailMean averages the last n samples (all of them if fewer).
func tailMean(s []float64, n int) float64 {
	if len(s) == 0 {
		return 0
	}
	if len(s) > n {
		s = s[len(s)-n:]
	}
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	return sum / float64(len(s))
}

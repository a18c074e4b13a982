package spec

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gpufleet/gpufleet/internal/autoscale"
	"github.com/gpufleet/gpufleet/internal/sched"
)

// ServiceSpec is the service: section of a kind: service job, what makes it
// an autoscaled inference service rather than a fixed gang. The shape of
// one replica is the job's one gang (Job.Gangs[0], named "replica"): its
// Replicas are the members of one replica, placed together as a gang (a
// model split over several nodes), and each service replica is one job for
// the scheduling core.
type ServiceSpec struct {
	// MinReplicas is the floor (0: scale to zero when idle); MaxReplicas
	// the ceiling.
	MinReplicas, MaxReplicas int
	// TargetInFlight is the load per replica in requests being served;
	// TargetTokensPerSecond, when the replicas report tokens, in prompt
	// tokens a second.
	TargetInFlight        float64
	TargetTokensPerSecond float64
	// MaxInFlight caps the requests one replica is given at once (0: no
	// cap); the gateway holds the others in its queue.
	MaxInFlight int
	// Latency is the time-to-first-token objective, Quantile the share of
	// requests it covers (0: the defaults of package autoscale).
	Latency  time.Duration
	Quantile float64
	// ReadinessPath is probed on the replica's port (ReadinessPort when
	// set, else the port the agent assigns it).
	ReadinessPath string
	ReadinessPort int
	// ScaleDownGrace is how long capacity must go unneeded before it is
	// removed (and an idle service waits before it goes to zero).
	ScaleDownGrace time.Duration
	// DrainTimeout bounds how long a replica taken out of routing waits for
	// its requests in flight before it is stopped.
	DrainTimeout time.Duration
	// StartTimeout is how long a replica may take to become ready before it
	// is replaced; 0 takes the server's default.
	StartTimeout time.Duration
	// ColdStart is the expected load time until one is measured (0:
	// unknown).
	ColdStart time.Duration
	// Policy names the autoscaling policy: one of autoscale.Names() or
	// PolicyStatic.
	Policy string
	// QueueLimit and QueueTimeout bound the requests the gateway holds
	// while no replica can take them.
	QueueLimit   int
	QueueTimeout time.Duration
}

// Service defaults and bounds.
const (
	// PolicyStatic runs MaxReplicas replicas at all times.
	PolicyStatic = "static"
	// DefaultReadinessPath is where vLLM, TGI and SGLang answer once the
	// model is loaded.
	DefaultReadinessPath = "/health"
	// DefaultScaleDownGrace is Knative's scale-to-zero grace period.
	DefaultScaleDownGrace = 30 * time.Second
	// DefaultDrainTimeout is Knative's default request timeout: the
	// longest a request is expected to take.
	DefaultDrainTimeout = 5 * time.Minute
	// DefaultQueueLimit and DefaultQueueTimeout bound the gateway's hold.
	DefaultQueueLimit   = 100
	DefaultQueueTimeout = 2 * time.Minute
	// MinStartTimeout is the shortest start timeout a spec may ask for:
	// loading a model takes minutes, and a replica killed while loading
	// is the failure services are most often reported for.
	MinStartTimeout = time.Minute
	// MaxServiceReplicas and MaxServiceMembers bound a service, so that
	// every replica's identity fits the agent protocol.
	MaxServiceReplicas = 10_000
	MaxServiceMembers  = 32
	maxQueueLimit      = 100_000
	maxServiceDuration = 24 * time.Hour
)

// ServicePolicies lists the policies a service may name, sorted.
func ServicePolicies() []string {
	return slices.Sorted(slices.Values(append(autoscale.Names(), PolicyStatic)))
}

var serviceFields = []string{"replica", "minReplicas", "maxReplicas", "target", "maxInFlight", "objective",
	"readiness", "scaleDownGrace", "drainTimeout", "startTimeout", "coldStart", "policy", "queue"}

var replicaFields = []string{"members", "accelerators", "count", "fraction", "cpu", "memory"}

// service reads a service: section and the gang of one replica.
func (o *options) service(v value) (*ServiceSpec, []sched.Gang) {
	s := &ServiceSpec{MinReplicas: 1, ReadinessPath: DefaultReadinessPath, ScaleDownGrace: DefaultScaleDownGrace,
		DrainTimeout: DefaultDrainTimeout, Policy: autoscale.DefaultPolicy, QueueLimit: DefaultQueueLimit,
		QueueTimeout: DefaultQueueTimeout}
	fs, isMap := v.fields(serviceFields...)
	if !isMap {
		return s, nil
	}
	gang := sched.Gang{Name: "replica", Replicas: 1}
	if f, ok := fs.need("replica"); ok {
		if rfs, isMap := f.fields(replicaFields...); isMap {
			if m, ok := rfs.get("members"); ok {
				x, _ := m.intIn(1, MaxServiceMembers)
				gang.Replicas = int(x)
			}
			gang.Shape = o.shape(rfs)
		}
	}
	maxVal, hasMax := fs.need("maxReplicas")
	if hasMax {
		x, _ := maxVal.intIn(1, MaxServiceReplicas)
		s.MaxReplicas = int(x)
	}
	if f, ok := fs.get("minReplicas"); ok {
		hi := int64(MaxServiceReplicas)
		if s.MaxReplicas > 0 {
			hi = int64(s.MaxReplicas)
		}
		x, _ := f.intIn(0, hi)
		s.MinReplicas = int(x)
	} else if hasMax && s.MaxReplicas > 0 && s.MinReplicas > s.MaxReplicas {
		s.MinReplicas = s.MaxReplicas
	}
	if f, ok := fs.need("target"); ok {
		if tfs, isMap := f.fields("inFlight", "tokensPerSecond"); isMap {
			if x, ok := tfs.need("inFlight"); ok {
				s.TargetInFlight = positive(x, 1e6)
			}
			if x, ok := tfs.get("tokensPerSecond"); ok {
				s.TargetTokensPerSecond = positive(x, 1e9)
			}
		}
	}
	if f, ok := fs.get("maxInFlight"); ok {
		x, _ := f.intIn(1, 1_000_000)
		s.MaxInFlight = int(x)
	}
	if f, ok := fs.get("objective"); ok {
		if ofs, isMap := f.fields("ttft", "quantile"); isMap {
			if x, ok := ofs.need("ttft"); ok {
				s.Latency = durationMs(x, time.Millisecond, time.Hour)
			}
			if x, ok := ofs.get("quantile"); ok {
				if q, ok := x.number(); ok {
					if !(q > 0 && q < 1) {
						x.errorf("%v: want a share above 0 and below 1, such as 0.99", q)
					}
					s.Quantile = q
				}
			}
		}
	}
	if f, ok := fs.get("readiness"); ok {
		if rfs, isMap := f.fields("path", "port"); isMap {
			if p, ok := rfs.get("path"); ok {
				if str, ok := p.str(); ok {
					if msg := checkHTTPPath(str); msg != "" {
						p.errorf("%s", msg)
					}
					s.ReadinessPath = str
				}
			}
			if p, ok := rfs.get("port"); ok {
				x, _ := p.intIn(1, 65535)
				s.ReadinessPort = int(x)
			}
		}
	}
	if f, ok := fs.get("scaleDownGrace"); ok {
		s.ScaleDownGrace = durationMs(f, 0, maxServiceDuration)
	}
	if f, ok := fs.get("drainTimeout"); ok {
		s.DrainTimeout = durationMs(f, 0, maxServiceDuration)
	}
	if f, ok := fs.get("startTimeout"); ok {
		s.StartTimeout = durationMs(f, MinStartTimeout, maxServiceDuration)
	}
	if f, ok := fs.get("coldStart"); ok {
		s.ColdStart = durationMs(f, 0, maxServiceDuration)
	}
	if f, ok := fs.get("policy"); ok {
		if str, ok := f.str(); ok {
			if !slices.Contains(ServicePolicies(), str) {
				f.errorf("%q: want one of %s", str, strings.Join(ServicePolicies(), ", "))
			}
			s.Policy = str
		}
	}
	if f, ok := fs.get("queue"); ok {
		if qfs, isMap := f.fields("limit", "timeout"); isMap {
			if x, ok := qfs.get("limit"); ok {
				n, _ := x.intIn(0, maxQueueLimit)
				s.QueueLimit = int(n)
			}
			if x, ok := qfs.get("timeout"); ok {
				s.QueueTimeout = durationMs(x, time.Second, time.Hour)
			}
		}
	}
	return s, []sched.Gang{gang}
}

// checkServiceRun refuses the run fields that do not apply to a service:
// its replicas are replaced when they exit, each on its own.
func checkServiceRun(fs fields) {
	for _, k := range []string{"restartPolicy", "maxRestarts", "resize", "replicaPolicy"} {
		if f, ok := fs.get(k); ok {
			f.errorf("does not apply to a service: a replica that exits or fails is replaced by a new one; leave %s out", k)
		}
	}
}

// AutoscaleSpec is the spec the service's autoscaling policy runs on.
func (s *ServiceSpec) AutoscaleSpec() autoscale.Spec {
	return autoscale.Spec{MinReplicas: s.MinReplicas, MaxReplicas: s.MaxReplicas, TargetInFlight: s.TargetInFlight,
		TargetTokensPerSecond: s.TargetTokensPerSecond, Latency: s.Latency, LatencyQuantile: s.Quantile,
		ScaleDownGrace: s.ScaleDownGrace, ColdStart: s.ColdStart}
}

func positive(v value, hi float64) float64 {
	x, ok := v.number()
	if !ok {
		return 0
	}
	if !(x > 0 && x <= hi) || math.IsInf(x, 0) {
		v.errorf("%v: want a number above 0 and at most %g", x, hi)
		return 0
	}
	return x
}

// durationMs reads a duration as parseDuration does, or a whole number of
// milliseconds ("500ms"), within lo..hi.
func durationMs(v value, lo, hi time.Duration) time.Duration {
	s, ok := v.str()
	if !ok {
		return 0
	}
	var d time.Duration
	if ms, isMs := strings.CutSuffix(s, "ms"); isMs && ms != "" && strings.Trim(ms, "0123456789") == "" && len(ms) <= 12 {
		n, _ := strconv.ParseInt(ms, 10, 64)
		d = time.Duration(n) * time.Millisecond
	} else {
		sec, err := parseDuration(s)
		if err != nil {
			v.errorf("%q: want a duration such as 500ms, 30s, 5m or 1h30m", s)
			return 0
		}
		if sec > int64(hi/time.Second)+1 {
			v.errorf("%s: want at most %s", s, formatMs(hi))
			return 0
		}
		d = time.Duration(sec) * time.Second
	}
	if d < lo || d > hi {
		v.errorf("%s: want %s to %s", s, formatMs(lo), formatMs(hi))
		return 0
	}
	return d
}

// formatMs writes a duration the way durationMs reads it.
func formatMs(d time.Duration) string {
	if d%time.Second == 0 {
		return formatDuration(int64(d / time.Second))
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
}

// checkHTTPPath says what is wrong with a readiness path, or "".
func checkHTTPPath(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Sprintf("%q: want an absolute path such as /health", p)
	case len(p) > 1024:
		return "longer than 1024 bytes"
	case strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '#' }):
		return fmt.Sprintf("%q: a URL path holds no spaces, control characters or '#'", p)
	}
	return ""
}

// writeService renders a service: section the way service reads it.
func writeService(b *bytes.Buffer, s *ServiceSpec, g *sched.Gang) {
	kv := func(indent, k, v string) { fmt.Fprintf(b, "%s%s: %s\n", indent, k, v) }
	b.WriteString("service:\n  replica:\n")
	if g.Replicas != 1 {
		kv("    ", "members", strconv.Itoa(g.Replicas))
	}
	r := &g.Shape
	if len(r.Accel) > 0 {
		q := make([]string, len(r.Accel))
		for i, a := range r.Accel {
			q[i] = quote(a)
		}
		kv("    ", "accelerators", "["+strings.Join(q, ", ")+"]")
	}
	if r.Devices > 0 {
		kv("    ", "count", strconv.Itoa(r.Devices))
	} else if r.Milli > 0 {
		kv("    ", "fraction", formatMilli(int64(r.Milli)))
	}
	if r.CPUMilli != 0 {
		kv("    ", "cpu", formatCPU(r.CPUMilli))
	}
	if r.MemoryMiB != 0 {
		kv("    ", "memory", formatMemory(r.MemoryMiB))
	}
	if len(r.Accel) == 0 && r.Devices == 0 && r.Milli == 0 && r.CPUMilli == 0 && r.MemoryMiB == 0 && g.Replicas == 1 {
		kv("    ", "members", "1")
	}
	kv("  ", "minReplicas", strconv.Itoa(s.MinReplicas))
	kv("  ", "maxReplicas", strconv.Itoa(s.MaxReplicas))
	b.WriteString("  target:\n")
	kv("    ", "inFlight", strconv.FormatFloat(s.TargetInFlight, 'g', -1, 64))
	if s.TargetTokensPerSecond > 0 {
		kv("    ", "tokensPerSecond", strconv.FormatFloat(s.TargetTokensPerSecond, 'g', -1, 64))
	}
	if s.MaxInFlight > 0 {
		kv("  ", "maxInFlight", strconv.Itoa(s.MaxInFlight))
	}
	if s.Latency > 0 {
		b.WriteString("  objective:\n")
		kv("    ", "ttft", formatMs(s.Latency))
		if s.Quantile > 0 {
			kv("    ", "quantile", strconv.FormatFloat(s.Quantile, 'g', -1, 64))
		}
	}
	b.WriteString("  readiness:\n")
	kv("    ", "path", quote(s.ReadinessPath))
	if s.ReadinessPort > 0 {
		kv("    ", "port", strconv.Itoa(s.ReadinessPort))
	}
	kv("  ", "scaleDownGrace", formatMs(s.ScaleDownGrace))
	kv("  ", "drainTimeout", formatMs(s.DrainTimeout))
	if s.StartTimeout > 0 {
		kv("  ", "startTimeout", formatMs(s.StartTimeout))
	}
	if s.ColdStart > 0 {
		kv("  ", "coldStart", formatMs(s.ColdStart))
	}
	kv("  ", "policy", s.Policy)
	b.WriteString("  queue:\n")
	kv("    ", "limit", strconv.Itoa(s.QueueLimit))
	kv("    ", "timeout", formatMs(s.QueueTimeout))
}

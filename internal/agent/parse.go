package agent

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"

	"github.com/gpufleet/gpufleet/internal/spec/guard"
)

// ParseAccelerators reads "COUNTxTYPE" (e.g. "8xh100"), or "none" for a
// CPU-only node, into an accelerator type and count.
func ParseAccelerators(s string) (accel string, count int, err error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "none" || s == "0" {
		return "none", 0, nil
	}
	n, typ, ok := strings.Cut(s, "x")
	if !ok {
		return "", 0, fmt.Errorf("accelerators %q: want COUNTxTYPE (e.g. 8xh100) or none", s)
	}
	count, err = strconv.Atoi(n)
	if err != nil || count < 1 {
		return "", 0, fmt.Errorf("accelerators %q: count %q is not a positive integer; want COUNTxTYPE (e.g. 8xh100) or none", s, n)
	}
	if typ == "" || strings.ContainsAny(typ, " \t,=") {
		return "", 0, fmt.Errorf("accelerators %q: type %q is not a name; want COUNTxTYPE (e.g. 8xh100) or none", s, typ)
	}
	return typ, count, nil
}

var memUnits = map[string]int64{"": 1, "mi": 1, "gi": 1 << 10, "ti": 1 << 20}

// ParseMemory reads a memory size with a binary suffix (Mi, Gi, Ti; a bare
// number is MiB) into MiB.
func ParseMemory(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	unit, ok := memUnits[strings.ToLower(t[i:])]
	if !ok {
		return 0, fmt.Errorf("memory %q: unit %q: want Mi, Gi or Ti (e.g. 512Gi)", s, t[i:])
	}
	v, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || v < 1 || v > math.MaxInt64/unit {
		return 0, fmt.Errorf("memory %q: want a positive size such as 512Gi or 65536Mi", s)
	}
	return v * unit, nil
}

// ParseCPU reads a CPU amount as cores ("64", "0.5") or millicores ("500m").
func ParseCPU(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if m, ok := strings.CutSuffix(t, "m"); ok {
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil || v < 1 {
			return 0, fmt.Errorf("cpu %q: want cores (64, 0.5) or millicores (500m)", s)
		}
		return v, nil
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || v > 1e12 || math.IsNaN(v) {
		return 0, fmt.Errorf("cpu %q: want cores (64, 0.5) or millicores (500m)", s)
	}
	milli := int64(math.Round(v * 1000))
	if milli < 1 {
		return 0, fmt.Errorf("cpu %q: below one millicore", s)
	}
	return milli, nil
}

// ParsePath reads "level=name,level=name" (e.g.
// "region=eu,zone=eu-1,block=b1,rack=r07") into a topology path.
func ParsePath(s string) (map[string]string, error) {
	out := map[string]string{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("path %q: part %q: want level=name, e.g. region=eu,zone=eu-1,block=b1,rack=r07", s, part)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("path %q: level %q given twice", s, k)
		}
		out[k] = v
	}
	return out, nil
}

// TopologyFile is the optional file a provisioning system drops on a node
// to say where it sits, e.g.
//
//	path: {region: eu, zone: eu-1, block: b1, rack: r07}
//	labels: {nvlink: "nvl72"}
type TopologyFile struct {
	Path   map[string]string `yaml:"path"`
	Labels map[string]string `yaml:"labels"`
}

// maxTopologyBytes bounds a topology file: a path and a few labels.
const maxTopologyBytes = 64 << 10

// ReadTopologyFile reads a TopologyFile strictly: unknown keys are errors.
func ReadTopologyFile(name string) (TopologyFile, error) {
	var tf TopologyFile
	f, err := os.Open(name)
	if err != nil {
		return tf, fmt.Errorf("topology file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTopologyBytes+1))
	if err != nil {
		return tf, fmt.Errorf("topology file: %w", err)
	}
	if err := guard.CheckYAML(name, b, maxTopologyBytes); err != nil {
		return tf, fmt.Errorf("topology file: %w", err)
	}
	if err := yaml.UnmarshalWithOptions(b, &tf, yaml.Strict()); err != nil {
		return tf, fmt.Errorf("topology file %s: %w", name, err)
	}
	for k, v := range tf.Path {
		if k == "" || v == "" {
			return tf, fmt.Errorf("topology file %s: path entry %q=%q: level and name must not be empty", name, k, v)
		}
	}
	return tf, nil
}

package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// GPU is one accelerator as nvidia-smi lists it.
type GPU struct {
	Index     int    `json:"index"`
	Name      string `json:"name"`      // the product name, e.g. "NVIDIA H100 80GB HBM3"
	Accel     string `json:"accel"`     // the catalog name derived from Name, e.g. "h100"
	MemoryMiB int64  `json:"memoryMiB"` // 0 when nvidia-smi reports it as not available
	UUID      string `json:"uuid"`
}

// Inventory is what a node offers to the scheduler.
type Inventory struct {
	Accel     string // "" for a CPU-only node
	Count     int
	CPUMilli  int64
	MemoryMiB int64
	GPUs      []GPU // the discovered devices; empty when the accelerators were given
}

// NvidiaSMIArgs are the arguments the agent passes to nvidia-smi; the parser
// expects the four columns they ask for, in this order.
var NvidiaSMIArgs = []string{"--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits"}

// ParseNvidiaSMI reads the output of nvidia-smi run with NvidiaSMIArgs: one
// line per GPU, "index, name, memory.total (MiB), uuid". Blank lines are
// skipped; any other line that does not fit is an error naming it, so a
// driver message ("No devices were found", "couldn't communicate with the
// NVIDIA driver") is never mistaken for a GPU.
func ParseNvidiaSMI(out []byte) ([]GPU, error) {
	var gpus []GPU
	seen := map[int]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		fields := strings.Split(text, ",")
		if len(fields) < 4 {
			return nil, fmt.Errorf("nvidia-smi line %d %q: want 4 comma-separated fields (index, name, memory.total, uuid), got %d", line, clip(text), len(fields))
		}
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		// A name could in principle hold a comma; index, memory and uuid never do.
		n := len(fields)
		name := strings.TrimSpace(strings.Join(fields[1:n-2], ","))
		idx, err := strconv.Atoi(fields[0])
		if err != nil || idx < 0 {
			return nil, fmt.Errorf("nvidia-smi line %d: index %q is not a non-negative integer", line, clip(fields[0]))
		}
		if seen[idx] {
			return nil, fmt.Errorf("nvidia-smi line %d: index %d listed twice", line, idx)
		}
		seen[idx] = true
		if name == "" {
			return nil, fmt.Errorf("nvidia-smi line %d: name is empty", line)
		}
		mem, err := parseSMIMemory(fields[n-2])
		if err != nil {
			return nil, fmt.Errorf("nvidia-smi line %d: memory.total: %w", line, err)
		}
		uuid := fields[n-1]
		if uuid == "" {
			return nil, fmt.Errorf("nvidia-smi line %d: uuid is empty", line)
		}
		gpus = append(gpus, GPU{Index: idx, Name: name, Accel: AccelName(name), MemoryMiB: mem, UUID: uuid})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("nvidia-smi output: %w", err)
	}
	sort.Slice(gpus, func(i, j int) bool { return gpus[i].Index < gpus[j].Index })
	return gpus, nil
}

// parseSMIMemory reads memory.total in MiB; nvidia-smi prints "[N/A]" or
// "[Not Supported]" where the driver does not know it, which counts as 0.
func parseSMIMemory(s string) (int64, error) {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return 0, nil
	}
	s = strings.TrimSpace(strings.TrimSuffix(s, "MiB"))
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a non-negative number of MiB", clip(s))
	}
	return v, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// accelFamilies maps the model token of an NVIDIA product name to the catalog
// name. Order matters: gb200 must be tried before b200, l40s before l40.
var accelFamilies = []struct {
	re   *regexp.Regexp
	name string
}{
	{regexp.MustCompile(`\bgb200\b`), "gb200"},
	{regexp.MustCompile(`\bgh200\b`), "gh200"},
	{regexp.MustCompile(`\bh100\b`), "h100"},
	{regexp.MustCompile(`\bh200\b`), "h200"},
	{regexp.MustCompile(`\bb200\b`), "b200"},
	{regexp.MustCompile(`\bb100\b`), "b100"},
	{regexp.MustCompile(`\ba100\b`), "a100"},
	{regexp.MustCompile(`\bl40s\b`), "l40s"},
}

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

// AccelName derives a catalog accelerator name from an NVIDIA product name:
// "NVIDIA H100 80GB HBM3" and "NVIDIA H100 PCIe" give "h100",
// "NVIDIA A100-SXM4-80GB" gives "a100", "NVIDIA L40S" gives "l40s". A name
// of no known family keeps a normalized form: lower case, without the
// vendor word, runs of other characters turned into single dashes
// ("Tesla V100-SXM2-32GB" gives "tesla-v100-sxm2-32gb").
func AccelName(product string) string {
	s := strings.ToLower(product)
	tokens := nonAlnum.ReplaceAllString(s, " ")
	for _, f := range accelFamilies {
		if f.re.MatchString(tokens) {
			return f.name
		}
	}
	s = strings.TrimSpace(nonAlnum.ReplaceAllString(s, " "))
	s = strings.TrimPrefix(s, "nvidia ")
	s = strings.Trim(strings.ReplaceAll(s, " ", "-"), "-")
	if s == "" || s == "nvidia" {
		return "unknown"
	}
	return s
}

// Inventory from the GPUs: a node carries accelerators of one type, so a
// mix is an error that asks for --accelerators.
func inventoryFromGPUs(gpus []GPU) (string, int, error) {
	if len(gpus) == 0 {
		return "", 0, nil
	}
	counts := map[string]int{}
	for _, g := range gpus {
		counts[g.Accel]++
	}
	if len(counts) > 1 {
		var parts []string
		for name, n := range counts {
			parts = append(parts, fmt.Sprintf("%d x %s", n, name))
		}
		sort.Strings(parts)
		return "", 0, fmt.Errorf("node has mixed accelerator types (%s); a node carries one type: pass --accelerators COUNTxTYPE", strings.Join(parts, ", "))
	}
	return gpus[0].Accel, len(gpus), nil
}

// Runner runs a discovery command and returns its standard output.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

func execRunner(ctx context.Context, name string, args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(out))
		}
		return nil, fmt.Errorf("%s: %w: %s", name, err, clip(msg))
	}
	return out, nil
}

// ErrNoNvidiaSMI says nvidia-smi is not on PATH: the node is CPU-only.
var ErrNoNvidiaSMI = errors.New("nvidia-smi is not on PATH")

// DiscoverGPUs runs nvidia-smi when it is on PATH and parses its output.
// It returns ErrNoNvidiaSMI when the tool is absent. A run nil means the
// real command.
func DiscoverGPUs(ctx context.Context, run Runner) ([]GPU, error) {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil, ErrNoNvidiaSMI
	}
	if run == nil {
		run = execRunner
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := run(ctx, path, NvidiaSMIArgs...)
	if err != nil {
		return nil, err
	}
	return ParseNvidiaSMI(out)
}

// Discover fills the parts of inv that are zero from the machine: the
// accelerators from nvidia-smi (CPU-only when it is absent), the CPU count
// from the scheduler's view of usable CPUs and the memory from
// /proc/meminfo. An Accel of "none" in inv means CPU-only without asking
// nvidia-smi.
func Discover(ctx context.Context, inv Inventory, run Runner) (Inventory, error) {
	switch {
	case inv.Accel == "none":
		inv.Accel, inv.Count = "", 0
	case inv.Count == 0 && inv.Accel == "":
		gpus, err := DiscoverGPUs(ctx, run)
		switch {
		case errors.Is(err, ErrNoNvidiaSMI):
		case err != nil:
			return inv, fmt.Errorf("discover accelerators (pass --accelerators to skip): %w", err)
		default:
			accel, n, err := inventoryFromGPUs(gpus)
			if err != nil {
				return inv, err
			}
			inv.Accel, inv.Count, inv.GPUs = accel, n, gpus
		}
	}
	if inv.CPUMilli == 0 {
		inv.CPUMilli = int64(runtime.NumCPU()) * 1000
	}
	if inv.MemoryMiB == 0 {
		mem, err := memTotalMiB("/proc/meminfo")
		if err != nil {
			return inv, fmt.Errorf("discover memory (pass --memory to skip): %w", err)
		}
		inv.MemoryMiB = mem
	}
	return inv, nil
}

// memTotalMiB reads MemTotal from a meminfo file.
func memTotalMiB(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseMemTotal(b)
}

func parseMemTotal(b []byte) (int64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("meminfo: MemTotal line %q: want \"MemTotal: N kB\"", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("meminfo: MemTotal %q is not a number of kB", f[0])
		}
		return kb / 1024, nil
	}
	return 0, errors.New("meminfo: no MemTotal line")
}

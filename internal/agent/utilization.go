package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gpufleet/gpufleet/internal/api"
)

// NvidiaSMIUtilizationArgs are the arguments the agent passes to nvidia-smi
// to read its devices' utilization; the parser expects the two columns they
// ask for, in this order.
var NvidiaSMIUtilizationArgs = []string{"--query-gpu=index,utilization.gpu", "--format=csv,noheader,nounits"}

// ParseNvidiaSMIUtilization reads the output of nvidia-smi run with
// NvidiaSMIUtilizationArgs: one line per GPU, "index, utilization.gpu"
// (percent of the last sample period in which a kernel ran). A device the
// driver reports no figure for ("[N/A]", "[Not Supported]") is left out, so
// the meter counts it as fully used. Blank lines are skipped; any other
// line that does not fit is an error naming it, so a driver message is
// never read as a reading.
func ParseNvidiaSMIUtilization(out []byte) ([]api.DeviceUtilization, error) {
	var us []api.DeviceUtilization
	var seen uint64
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		fields := strings.Split(text, ",")
		if len(fields) != 2 {
			return nil, fmt.Errorf("nvidia-smi line %d %q: want 2 comma-separated fields (index, utilization.gpu), got %d", line, clip(text), len(fields))
		}
		idx, err := strconv.Atoi(strings.TrimSpace(fields[0]))
		if err != nil || idx < 0 || idx > api.MaxUtilDevice {
			return nil, fmt.Errorf("nvidia-smi line %d: index %q: want an integer 0..%d", line, clip(strings.TrimSpace(fields[0])), api.MaxUtilDevice)
		}
		if seen&(1<<uint(idx)) != 0 {
			return nil, fmt.Errorf("nvidia-smi line %d: index %d listed twice", line, idx)
		}
		seen |= 1 << uint(idx)
		v := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(fields[1]), "%"))
		if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
			continue // no figure for this device
		}
		pct, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || pct < 0 || pct > 100 {
			return nil, fmt.Errorf("nvidia-smi line %d: utilization.gpu %q: want a percentage 0..100", line, clip(v))
		}
		us = append(us, api.DeviceUtilization{Device: idx, Percent: pct})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("nvidia-smi output: %w", err)
	}
	sort.Slice(us, func(i, j int) bool { return us[i].Device < us[j].Device })
	return us, nil
}

// UtilizationEvery is how often an agent reads its devices' utilization:
// nvidia-smi takes tens of milliseconds of CPU a call, and the server holds
// a reading until the next one (or for its sample TTL, minutes).
const UtilizationEvery = 10 * time.Second

// NvidiaSMIUtilization returns a Config.Utilization that runs nvidia-smi
// (run nil means the real command) at most once every UtilizationEvery and
// returns nothing in between. Give it only to an agent whose accelerators
// nvidia-smi listed.
func NvidiaSMIUtilization(run Runner) func(context.Context, time.Time) ([]api.DeviceUtilization, error) {
	if run == nil {
		run = execRunner
	}
	var last time.Time
	path := ""
	return func(ctx context.Context, now time.Time) ([]api.DeviceUtilization, error) {
		if !last.IsZero() && now.Sub(last) < UtilizationEvery {
			return nil, nil
		}
		last = now
		if path == "" {
			p, err := exec.LookPath("nvidia-smi")
			if err != nil {
				return nil, ErrNoNvidiaSMI
			}
			path = p
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		out, err := run(ctx, path, NvidiaSMIUtilizationArgs...)
		if err != nil {
			return nil, err
		}
		return ParseNvidiaSMIUtilization(out)
	}
}

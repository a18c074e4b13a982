package serve

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Profile is the performance of one replica of an inference service: how
// fast it turns prompts into first tokens, how fast each running sequence
// then generates, and how many sequences its batch and KV cache hold. The
// simulator serves requests with it (see Run); docs/SERVICES.md derives the
// defaults.
type Profile struct {
	// Accelerator is the fleet catalog's type name.
	Accelerator string `json:"accelerator"`
	// Devices is the number of accelerators one replica holds (tensor
	// parallelism); GPU-hours count them all.
	Devices int `json:"devices"`
	// PrefillTokensPerSec is the replica's prompt throughput: the prefill
	// engine runs one prompt at a time at this rate.
	PrefillTokensPerSec float64 `json:"prefill_tokens_per_s"`
	// DecodeTokensPerSec is the generation speed of each running sequence.
	DecodeTokensPerSec float64 `json:"decode_tokens_per_s_per_seq"`
	// MaxSeqs bounds the sequences running at once (vLLM's max_num_seqs).
	MaxSeqs int `json:"max_seqs"`
	// KVTokens is the KV cache's capacity in tokens; a running sequence
	// holds prompt + output tokens of it until it finishes.
	KVTokens int `json:"kv_tokens"`
}

// Validate checks every field and names the first that is wrong.
func (p Profile) Validate() error {
	switch {
	case p.Accelerator == "":
		return fmt.Errorf("profile: accelerator is empty")
	case p.Devices < 1 || p.Devices > 64:
		return fmt.Errorf("profile %s: devices %d: want 1 to 64", p.Accelerator, p.Devices)
	case !(p.PrefillTokensPerSec > 0) || math.IsInf(p.PrefillTokensPerSec, 0):
		return fmt.Errorf("profile %s: prefill tokens/s %g: want a positive number", p.Accelerator, p.PrefillTokensPerSec)
	case !(p.DecodeTokensPerSec > 0) || math.IsInf(p.DecodeTokensPerSec, 0):
		return fmt.Errorf("profile %s: decode tokens/s per sequence %g: want a positive number", p.Accelerator, p.DecodeTokensPerSec)
	case p.MaxSeqs < 1:
		return fmt.Errorf("profile %s: max sequences %d: want at least 1", p.Accelerator, p.MaxSeqs)
	case p.KVTokens < 1:
		return fmt.Errorf("profile %s: KV cache tokens %d: want at least 1", p.Accelerator, p.KVTokens)
	}
	return nil
}

// Hardware is what a datasheet says of one accelerator.
type Hardware struct {
	// Name is the fleet catalog's type name.
	Name string
	// DenseTFLOPS is the peak dense BF16/FP16 tensor throughput.
	DenseTFLOPS float64
	// MemoryTBps is the memory bandwidth.
	MemoryTBps float64
	// MemoryGB is the device memory, as the fleet catalog gives it.
	MemoryGB float64
}

// Model is what a model's configuration says of its serving cost.
type Model struct {
	Name string
	// Params is the parameter count; a token's forward pass costs
	// 2 x Params FLOPs.
	Params float64
	// WeightBytes is the size of the weights as served (BF16: 2 x Params).
	WeightBytes float64
	// KVBytesPerToken is 2 (K and V) x layers x KV heads x head dim x
	// bytes per element.
	KVBytesPerToken float64
}

// The constants of the derivation (docs/SERVICES.md gives the sources).
const (
	// prefillMFU is the share of peak FLOPs a prefill reaches.
	prefillMFU = 0.4
	// decodeBWEfficiency is the share of peak memory bandwidth a decode
	// step reaches.
	decodeBWEfficiency = 0.7
	// decodeBatch and decodeContext are the operating point at which the
	// per-sequence decode speed is taken: 32 sequences of 2,048 tokens.
	decodeBatch   = 32
	decodeContext = 2048
	// gpuMemoryUtilization is vLLM's default share of device memory it
	// manages (weights, activations, KV cache).
	gpuMemoryUtilization = 0.9
	// activationReserveGB is the memory a replica keeps per device for
	// activations and CUDA graphs.
	activationReserveGB = 2
	// maxNumSeqs is vLLM's default max_num_seqs.
	maxNumSeqs = 256
)

// Llama31_70B is the reference model of the built-in profiles: Llama 3.1
// 70B in BF16 (80 layers, 8 KV heads of dimension 128), the chat model of
// examples/service.yaml.
var Llama31_70B = Model{Name: "llama-3.1-70b", Params: 70.6e9, WeightBytes: 141.2e9, KVBytesPerToken: 2 * 80 * 8 * 128 * 2}

// Datasheets of the fleet catalog's accelerator types (vendor figures:
// dense BF16 tensor TFLOPS without sparsity, memory bandwidth; memory as
// the catalog has it).
var Datasheets = []Hardware{
	{Name: "a100", DenseTFLOPS: 312, MemoryTBps: 2.039, MemoryGB: 80},
	{Name: "h100", DenseTFLOPS: 989, MemoryTBps: 3.35, MemoryGB: 80},
	{Name: "h200", DenseTFLOPS: 989, MemoryTBps: 4.8, MemoryGB: 141},
	{Name: "b200", DenseTFLOPS: 2250, MemoryTBps: 8.0, MemoryGB: 192},
	{Name: "l40s", DenseTFLOPS: 362, MemoryTBps: 0.864, MemoryGB: 48},
	{Name: "mi300x", DenseTFLOPS: 1307, MemoryTBps: 5.3, MemoryGB: 192},
}

// Derive computes a replica profile of model m on devices accelerators of
// type hw by roofline arithmetic: prefill is compute-bound, decode is
// memory-bound, and the KV cache gets what vLLM leaves of device memory
// after the weights and activations.
func Derive(hw Hardware, m Model, devices int) (Profile, error) {
	d := float64(devices)
	if devices < 1 || devices > 64 {
		return Profile{}, fmt.Errorf("profile: devices %d: want 1 to 64", devices)
	}
	kvBytes := d*hw.MemoryGB*1e9*gpuMemoryUtilization - m.WeightBytes - d*activationReserveGB*1e9
	if kvBytes < m.KVBytesPerToken*decodeBatch*decodeContext {
		return Profile{}, fmt.Errorf("profile: %s does not fit on %d %s (%.0f GB)", m.Name, devices, hw.Name, d*hw.MemoryGB)
	}
	step := (m.WeightBytes + decodeBatch*decodeContext*m.KVBytesPerToken) / (d * hw.MemoryTBps * 1e12 * decodeBWEfficiency)
	return Profile{
		Accelerator:         hw.Name,
		Devices:             devices,
		PrefillTokensPerSec: math.Round(d * hw.DenseTFLOPS * 1e12 * prefillMFU / (2 * m.Params)),
		DecodeTokensPerSec:  math.Round(1/step*10) / 10,
		MaxSeqs:             maxNumSeqs,
		KVTokens:            int(kvBytes / m.KVBytesPerToken),
	}, nil
}

// DefaultAccelerator is the profile the simulator uses unless told: the
// example service's 2 x h200.
const DefaultAccelerator = "h200"

// ProfileFor is the built-in profile of one accelerator type: the
// reference model on the fewest devices, a power of two (a tensor-parallel
// size that divides the model's heads), whose KV cache holds the decode
// operating point.
func ProfileFor(accelerator string) (Profile, error) {
	hw, err := datasheet(accelerator)
	if err != nil {
		return Profile{}, err
	}
	for d := 1; d <= 8; d *= 2 {
		if p, err := Derive(hw, Llama31_70B, d); err == nil {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("accelerator %s: %s does not fit on 8 of them", accelerator, Llama31_70B.Name)
}

// ProfileOn is the reference model on a given number of devices.
func ProfileOn(accelerator string, devices int) (Profile, error) {
	hw, err := datasheet(accelerator)
	if err != nil {
		return Profile{}, err
	}
	return Derive(hw, Llama31_70B, devices)
}

func datasheet(name string) (Hardware, error) {
	for _, hw := range Datasheets {
		if hw.Name == name {
			return hw, nil
		}
	}
	return Hardware{}, fmt.Errorf("accelerator %q: want one of %s", name, strings.Join(Accelerators(), ", "))
}

// Accelerators lists the types with a built-in profile, sorted.
func Accelerators() []string {
	out := make([]string, len(Datasheets))
	for i, hw := range Datasheets {
		out[i] = hw.Name
	}
	sort.Strings(out)
	return out
}

// LoadTest gives the per-replica targets a load test of the service on
// requests like these would find: tokens, the replica's prefill
// throughput (it is then fully busy); in-flight, the requests it holds at
// that load by Little's law (arrival rate x time in the replica, for the
// trace's mean prompt and output), at most MaxSeqs.
func LoadTest(p Profile, reqs []Request) (inFlight, tokensPerSec float64) {
	if len(reqs) == 0 {
		return 1, p.PrefillTokensPerSec
	}
	var prompt, output float64
	for _, r := range reqs {
		prompt += float64(r.Prompt)
		output += float64(r.Output)
	}
	prompt /= float64(len(reqs))
	output /= float64(len(reqs))
	rate := p.PrefillTokensPerSec / prompt
	stay := prompt/p.PrefillTokensPerSec + (output-1)/p.DecodeTokensPerSec
	return min(max(rate*stay, 1), float64(p.MaxSeqs)), p.PrefillTokensPerSec
}

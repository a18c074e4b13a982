package serve

import (
	"bytes"
	_ "embed"
)

// sampleTrace is the first ten minutes of the Azure LLM inference trace's
// conversation requests (sample/README.md has the attribution).
//
//go:embed sample/azure_conv_10m.csv
var sampleTrace []byte

// SampleName names the embedded trace in messages and reports.
const SampleName = "the embedded sample (Azure LLM inference trace 2023, conversation, first 10 minutes)"

// Sample reads the embedded request trace: what gpufleet sim serve
// replays when it is given none, so that its default run shows a service
// scale on real traffic.
func Sample() ([]Request, error) { return Read("azure_conv_10m.csv", bytes.NewReader(sampleTrace)) }

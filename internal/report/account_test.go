package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/sim"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// A run with accounting shows each tenant's cost, credits, energy and
// carbon in the summary, the JSON and the page, with the burn-down of the
// prepaid tenant's credits.
func TestAccountingInTheReports(t *testing.T) {
	fs := spec.DefaultFleetSpec()
	g, err := sim.NewGenerator(sim.GenConfig{Jobs: 300, Seed: 5, Fleet: fs.Fleet, Queues: spec.DefaultQueues()})
	if err != nil {
		t.Fatal(err)
	}
	acct := &sim.Accounting{Grants: []ledger.Grant{{ID: "helix-1", Tenant: "helix", Amount: 1000 * ledger.Micro}},
		Ledger: ledger.Config{DefaultSite: &ledger.Site{PUE: 1.2, CarbonGPerKWh: 300}}}
	res, err := sim.Run(sim.Config{Accounting: acct}, fs.Fleet, g.Queues(), g)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := WriteText(&text, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cost USD", "commitments", "credits       helix: 1000.00 granted", "usage records; energy"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, res); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Accounting *sim.AccountResult `json:"accounting"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Accounting == nil || len(back.Accounting.Tenants) != 4 {
		t.Fatalf("JSON accounting: %v, %+v", err, back.Accounting)
	}
	var page bytes.Buffer
	if err := WriteHTML(&page, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<figure id="credits">`, "<h2>Accounting</h2>", "<td>helix</td>"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Without accounting nothing of it shows.
	plain := smallRun(t)
	page.Reset()
	if err := WriteHTML(&page, plain); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page.String(), "Accounting") || strings.Contains(page.String(), `id="credits"`) {
		t.Errorf("a run without accounting shows an accounting section")
	}
}

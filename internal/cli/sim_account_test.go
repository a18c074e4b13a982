package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpufleet/gpufleet/internal/sim"
)

// sim run --credits --commitments --prices meters the run: the same inputs
// give the same accounts, byte for byte; bad flags say what they take.
func TestSimRunWithAccounting(t *testing.T) {
	ex := filepath.Join("..", "..", "examples", "accounting")
	args := []string{"sim", "run", "--jobs", "400", "--seed", "4", "--json", "--quiet",
		"--prices", filepath.Join(ex, "prices.yaml"), "--credits", filepath.Join(ex, "credits.yaml"), "--commitments", filepath.Join(ex, "commitments.yaml")}
	code, a, stderr := simCLI(t, args...)
	if code != 0 {
		t.Fatalf("sim run: exit %d: %s", code, stderr)
	}
	if _, b, _ := simCLI(t, args...); !bytes.Equal([]byte(a), []byte(b)) {
		t.Error("two runs printed different JSON")
	}
	var s sim.Summary
	if err := json.Unmarshal([]byte(a), &s); err != nil {
		t.Fatal(err)
	}
	acc := s.Accounting
	if acc == nil || acc.Currency != "USD" || len(acc.Tenants) != 4 || acc.Records == 0 {
		t.Fatalf("accounting %+v", acc)
	}
	for _, ta := range acc.Tenants {
		switch ta.Tenant {
		case "frontier":
			if ta.Commitments <= 0 {
				t.Errorf("frontier holds a commitment, pays no fee: %+v", ta)
			}
		case "helix":
			if !ta.Prepaid || ta.Granted != 20_500_000_000 {
				t.Errorf("helix's grants: %+v", ta)
			}
		}
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("kind: credits\ngrants:\n  - id: x\n    tenant: nosuch\n    amount: 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"epoch":          {[]string{"--account", "--epoch", "yesterday"}, `--epoch "yesterday": want a date YYYY-MM-DD (UTC)`},
		"unknown tenant": {[]string{"--credits", bad}, `--credits: ` + bad + `:4:13: grants[0].tenant: "nosuch" is not a tenant`},
		"interval":       {[]string{"--account", "--meter-interval", "10ms"}, `--meter-interval 10ms: want at least 1s`},
		"carbon-aware":   {[]string{"--account", "--carbon-aware"}, `--carbon-aware meters energy and carbon on its own calendar (--start): give it without --account, --prices, --credits and --commitments, or run those without --carbon-aware`},
	} {
		code, _, stderr := simCLI(t, append([]string{"sim", "run", "--jobs", "10", "--quiet"}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, %q; want %q", name, code, stderr, tc.want)
		}
	}
}

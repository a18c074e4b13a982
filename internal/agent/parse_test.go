package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/gpufleet/gpufleet/internal/api"
)

func TestParseAccelerators(t *testing.T) {
	tests := map[string]struct {
		in      string
		accel   string
		count   int
		wantErr string
	}{
		"eight h100":   {in: "8xh100", accel: "h100", count: 8},
		"upper case":   {in: "4xB200", accel: "b200", count: 4},
		"none":         {in: "none", accel: "none"},
		"zero":         {in: "0", accel: "none"},
		"no x":         {in: "8h100", wantErr: "want COUNTxTYPE"},
		"zero count":   {in: "0xh100", wantErr: "not a positive integer"},
		"no type":      {in: "8x", wantErr: "is not a name"},
		"no count":     {in: "xh100", wantErr: "not a positive integer"},
		"comma in it":  {in: "8xh100,a100", wantErr: "is not a name"},
		"mi300x works": {in: "8xmi300x", accel: "mi300x", count: 8},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			accel, count, err := ParseAccelerators(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || accel != tc.accel || count != tc.count {
				t.Errorf("= %q, %d, %v; want %q, %d", accel, count, err, tc.accel, tc.count)
			}
		})
	}
}

func TestParseMemoryAndCPU(t *testing.T) {
	mem := map[string]int64{"512Gi": 512 << 10, "65536Mi": 65536, "2Ti": 2 << 20, "100": 100, " 1gi ": 1024}
	for in, want := range mem {
		if got, err := ParseMemory(in); err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Gi", "512GB", "-1Gi", "0", "1.5Gi", "99999999999999999Ti"} {
		if got, err := ParseMemory(in); err == nil {
			t.Errorf("ParseMemory(%q) = %d, want an error", in, got)
		}
	}
	cpu := map[string]int64{"64": 64000, "0.5": 500, "500m": 500, "1.0005": 1001}
	for in, want := range cpu {
		if got, err := ParseCPU(in); err != nil || got != want {
			t.Errorf("ParseCPU(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-2", "0m", "abc", "NaN", "0.0001", "1e13"} {
		if got, err := ParseCPU(in); err == nil {
			t.Errorf("ParseCPU(%q) = %d, want an error", in, got)
		}
	}
}

func TestParsePath(t *testing.T) {
	got, err := ParsePath("region=eu, zone=eu-1,block=b1,rack=r07,")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"region": "eu", "zone": "eu-1", "block": "b1", "rack": "r07"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParsePath (-want +got):\n%s", diff)
	}
	for _, in := range []string{"region", "region=", "=eu", "region=a,region=b"} {
		if _, err := ParsePath(in); err == nil {
			t.Errorf("ParsePath(%q): want an error", in)
		}
	}
}

func TestReadTopologyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("path: {region: eu, zone: eu-1, block: b1, rack: r07}\nlabels: {nvlink: nvl72}\n"), 0o644)
	tf, err := ReadTopologyFile(good)
	if err != nil {
		t.Fatal(err)
	}
	want := TopologyFile{
		Path:   map[string]string{"region": "eu", "zone": "eu-1", "block": "b1", "rack": "r07"},
		Labels: map[string]string{"nvlink": "nvl72"},
	}
	if diff := cmp.Diff(want, tf); diff != "" {
		t.Errorf("ReadTopologyFile (-want +got):\n%s", diff)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("path: {region: eu}\nrack: r07\n"), 0o644)
	if _, err := ReadTopologyFile(bad); err == nil {
		t.Error("unknown key rack: want an error")
	}
}

func TestParseProcStat(t *testing.T) {
	if !procIdentity {
		t.Skip("no /proc on this platform")
	}
	// The command name may hold spaces and parentheses.
	line := "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615\n"
	got, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := (procInfo{State: 'S', PGrp: 4242, StartTicks: 987654}); got != want {
		t.Errorf("parseProcStat = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "12 (x) S 1", "12 x S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q): want an error", bad)
		}
	}
	self, err := procStat(os.Getpid())
	if err != nil || self.StartTicks == 0 || self.exited() {
		t.Errorf("procStat(self) = %+v, %v", self, err)
	}
	if !alive(os.Getpid(), self.StartTicks) || alive(os.Getpid(), self.StartTicks+1) {
		t.Error("alive must hold for the right start time only")
	}
}

// keyName must give distinct keys distinct file names, and safe ones.
func TestKeyNameIsInjective(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		gen := rapid.Custom(func(t *rapid.T) api.ReplicaKey {
			return api.ReplicaKey{
				Job:     rapid.StringMatching(`[a-z_%./ -]{0,12}|[a-z]{150,200}`).Draw(t, "job"),
				Gang:    rapid.IntRange(-1, 3).Draw(t, "gang"),
				Replica: rapid.IntRange(0, 12).Draw(t, "replica"),
				Attempt: rapid.IntRange(0, 12).Draw(t, "attempt"),
			}
		})
		a, b := gen.Draw(t, "a"), gen.Draw(t, "b")
		na, nb := keyName(a), keyName(b)
		if (a == b) != (na == nb) {
			t.Fatalf("keyName(%+v) = %q, keyName(%+v) = %q", a, na, b, nb)
		}
		if strings.ContainsAny(na, "/ ") || strings.HasPrefix(na, ".") || len(na) > 200 {
			t.Fatalf("keyName(%+v) = %q: not a safe file name", a, na)
		}
	})
}

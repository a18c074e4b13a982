package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string]struct {
		r   PortRange
		err string
	}{
		"30000-32767":  {r: PortRange{30000, 32767}},
		" 2000 - 2000": {r: PortRange{2000, 2000}},
		"32767-30000":  {r: PortRange{32767, 30000}, err: "port range 32767-30000: want FIRST-LAST within 1024-65535, FIRST at most LAST"},
		"80-90":        {r: PortRange{80, 90}, err: "port range 80-90: want FIRST-LAST within 1024-65535, FIRST at most LAST"},
		"30000":        {r: PortRange{30000, 0}, err: `port range "30000": want FIRST-LAST, e.g. 30000-32767`},
		"a-b":          {err: `port range "a-b": want FIRST-LAST, e.g. 30000-32767`},
	} {
		r, err := ParsePortRange(in)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if diff := cmp.Diff(want.err, got); diff != "" {
			t.Errorf("ParsePortRange(%q) error (-want +got):\n%s", in, diff)
		}
		if err == nil && r != want.r {
			t.Errorf("ParsePortRange(%q) = %v, want %v", in, r, want.r)
		}
	}
}

// FuzzParsePortRange: whatever parses is a valid range that prints back
// to itself.
func FuzzParsePortRange(f *testing.F) {
	for _, s := range []string{"30000-32767", "1024-65535", "5-4", "-", "99999999999999999999-1", " 2000 - 2000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParsePortRange(s)
		if err != nil {
			return
		}
		if r.check() != nil {
			t.Fatalf("%q parsed to an invalid range %v", s, r)
		}
		again, err := ParsePortRange(r.String())
		if err != nil || again != r {
			t.Fatalf("%v prints as %q, which reads back as %v, %v", r, r.String(), again, err)
		}
	})
}

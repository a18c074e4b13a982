package cli

import (
	"testing"
	"time"
)

func TestHumanTimes(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.Local)
	at := func(d time.Duration) string { return now.Add(d).UTC().Format(time.RFC3339) }
	tests := map[string]string{
		"waits for room on its own until " + at(250*time.Second) + ", then may preempt": "waits for room on its own until 12:04:10 (in 4m 10s), then may preempt",
		"may start again from " + at(-90*time.Second):                                   "may start again from 11:58:30 (1m 30s ago)",
		"held until " + at(26*time.Hour+30*time.Minute):                                 "held until 2026-12-02 14:30:00 (in 1d 2h)",
		"by " + at(0): "by 12:00:00 (now)",
		"deferred to the cleanest window before its deadline " + at(8*time.Hour) + ": starts at " + at(3*time.Hour) + " on us/z1; its capacity is held for it (forecast 100.0 gCO2/kWh over its run, 400.0 if it ran now)": "deferred to the cleanest window before its deadline 20:00:00 (in 8h): starts at 15:00:00 (in 3h) on us/z1; its capacity is held for it (forecast 100.0 gCO2/kWh over its run, 400.0 if it ran now)",
		"no time here; 2026-12-01 is a date, not time": "no time here; 2026-12-01 is a date, not time",
	}
	for in, want := range tests {
		if got := humanTimes(in, now); got != want {
			t.Errorf("humanTimes(%q) = %q, want %q", in, got, want)
		}
	}
}

package cli

import (
	"fmt"
	"regexp"
	"time"
)

// The server writes the times in reasons as RFC 3339 (UTC), so they are
// exact in JSON and scripts; a person reads them in local time and as a
// distance from now ("15:04:05 (in 4m 10s)").
var rfc3339 = regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})\b`)

// humanTimes rewrites the RFC 3339 times of a reason for people.
func humanTimes(s string, now time.Time) string {
	return rfc3339.ReplaceAllStringFunc(s, func(m string) string {
		t, err := time.Parse(time.RFC3339, m)
		if err != nil {
			return m
		}
		return humanTime(t, now)
	})
}

// humanTime is a local clock time (with the date when it is not today)
// and how far it is from now.
func humanTime(t, now time.Time) string {
	lt := t.Local()
	clock := lt.Format("15:04:05")
	if y, m, d := lt.Date(); y != now.Local().Year() || m != now.Local().Month() || d != now.Local().Day() {
		clock = lt.Format("2006-01-02 15:04:05")
	}
	d := t.Sub(now).Round(time.Second)
	switch {
	case d > 0:
		return fmt.Sprintf("%s (in %s)", clock, span(d))
	case d < 0:
		return fmt.Sprintf("%s (%s ago)", clock, span(-d))
	}
	return clock + " (now)"
}

// span writes a duration the way people say it: "4m 10s", "2h 5m",
// "3d 4h".
func span(d time.Duration) string {
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		if s%60 == 0 {
			return fmt.Sprintf("%dm", s/60)
		}
		return fmt.Sprintf("%dm %ds", s/60, s%60)
	case s < 86400:
		if (s%3600)/60 == 0 {
			return fmt.Sprintf("%dh", s/3600)
		}
		return fmt.Sprintf("%dh %dm", s/3600, (s%3600)/60)
	}
	if (s%86400)/3600 == 0 {
		return fmt.Sprintf("%dd", s/86400)
	}
	return fmt.Sprintf("%dd %dh", s/86400, (s%86400)/3600)
}

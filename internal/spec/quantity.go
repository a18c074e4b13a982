package spec

import (
	"fmt"
	"strconv"
	"strings"
)

// Quantities are parsed from their decimal text, never through float64, so
// that "0.1" accelerators is exactly 100 milli and a value either converts
// exactly or is refused.

// maxMilliWhole bounds the whole part of a milli quantity: a trillion
// accelerators or CPU cores is far beyond any fleet and keeps sums of
// quantities inside int64.
const maxMilliWhole = 1_000_000_000_000

// parseMilli reads a non-negative decimal with at most three decimals
// ("12", "0.5", "1.125") as thousandths.
func parseMilli(s string) (int64, error) {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" && (!dot || frac == "") {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if dot && frac == "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	var w int64
	for i := 0; i < len(whole); i++ {
		c := whole[i]
		if c < '0' || c > '9' {
			if c == '-' && i == 0 {
				return 0, fmt.Errorf("%s must not be negative", s)
			}
			return 0, fmt.Errorf("%q is not a number", s)
		}
		w = w*10 + int64(c-'0')
		if w > maxMilliWhole {
			return 0, fmt.Errorf("%s is too large", s)
		}
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 3 {
		return 0, fmt.Errorf("%s has more than 3 decimals", s)
	}
	var f int64
	for i := 0; i < 3; i++ {
		f *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("%q is not a number", s)
			}
			f += int64(c - '0')
		}
	}
	return w*1000 + f, nil
}

// formatMilli writes thousandths as a short decimal ("0.5", "12").
func formatMilli(m int64) string {
	if m%1000 == 0 {
		return strconv.FormatInt(m/1000, 10)
	}
	s := fmt.Sprintf("%d.%03d", m/1000, m%1000)
	return strings.TrimRight(s, "0")
}

// parseCPU reads CPU as cores ("32", "1.5") or millicores ("500m").
func parseCPU(s string) (int64, error) {
	if m, ok := strings.CutSuffix(s, "m"); ok {
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil || v < 0 || strings.HasPrefix(m, "+") || v > maxMilliWhole {
			return 0, fmt.Errorf("%q: want cores (32, 0.5) or millicores (500m)", s)
		}
		return v, nil
	}
	v, err := parseMilli(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want cores (32, 0.5) or millicores (500m)", s)
	}
	return v, nil
}

// formatCPU writes millicores the way parseCPU reads them.
func formatCPU(m int64) string {
	if m%1000 == 0 {
		return strconv.FormatInt(m/1000, 10)
	}
	return strconv.FormatInt(m, 10) + "m"
}

var sizeUnits = []struct {
	suffix string
	mib    int64
}{{"Mi", 1}, {"Gi", 1 << 10}, {"Ti", 1 << 20}, {"Pi", 1 << 30}}

// parseMemory reads a size with a binary unit ("512Mi", "256Gi", "1.5Ti")
// as MiB. A bare number is refused: bytes and MiB are too easy to confuse.
func parseMemory(s string) (int64, error) {
	for _, u := range sizeUnits {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		m, err := parseMilli(num)
		if err != nil {
			break
		}
		if m > maxMilliWhole*1000/u.mib {
			return 0, fmt.Errorf("%s is too large", s)
		}
		total := m * u.mib
		if total%1000 != 0 {
			return 0, fmt.Errorf("%s is not a whole number of Mi", s)
		}
		return total / 1000, nil
	}
	return 0, fmt.Errorf("%q: want a size with a unit Mi, Gi, Ti or Pi, e.g. 256Gi", s)
}

// formatMemory writes MiB in the largest unit that keeps it whole.
func formatMemory(mib int64) string {
	for i := len(sizeUnits) - 1; i > 0; i-- {
		u := sizeUnits[i]
		if mib%u.mib == 0 && mib != 0 {
			return strconv.FormatInt(mib/u.mib, 10) + u.suffix
		}
	}
	return strconv.FormatInt(mib, 10) + "Mi"
}

var durationUnits = []struct {
	suffix byte
	sec    int64
}{{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}}

// maxDurationSec bounds durations at about 100 years.
const maxDurationSec = 100 * 365 * 86400

// parseDuration reads a duration in whole seconds: one or more
// number-unit parts with units d, h, m, s, largest first ("30s", "5m",
// "4h", "2d", "1h30m").
func parseDuration(s string) (int64, error) {
	bad := fmt.Errorf("%q: want a duration such as 30s, 5m, 4h, 2d or 1h30m", s)
	if s == "" {
		return 0, bad
	}
	var total int64
	next := 0 // index into durationUnits the next part may use
	for rest := s; rest != ""; {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || i > 12 {
			return 0, bad
		}
		n, _ := strconv.ParseInt(rest[:i], 10, 64)
		u := -1
		for k := next; k < len(durationUnits); k++ {
			if durationUnits[k].suffix == rest[i] {
				u = k
				break
			}
		}
		if u < 0 {
			return 0, bad
		}
		total += n * durationUnits[u].sec
		if total > maxDurationSec {
			return 0, fmt.Errorf("%s is longer than 100 years", s)
		}
		next = u + 1
		rest = rest[i+1:]
	}
	return total, nil
}

// formatDuration writes seconds the way parseDuration reads them.
func formatDuration(sec int64) string {
	if sec == 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range durationUnits {
		if sec >= u.sec {
			fmt.Fprintf(&b, "%d%c", sec/u.sec, u.suffix)
			sec %= u.sec
		}
	}
	return b.String()
}

// PriorityClasses are the named priorities a job may give instead of a
// number.
var PriorityClasses = []struct {
	Name  string
	Value int32
}{{"low", 100}, {"normal", 1000}, {"high", 10000}, {"critical", 100000}}

// DefaultPriority is a job's priority when it names none ("normal").
const DefaultPriority int32 = 1000

func priorityClassNames() string {
	names := make([]string, len(PriorityClasses))
	for i, c := range PriorityClasses {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

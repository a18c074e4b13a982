package ledger

import (
	"fmt"
	"time"
)

// Time in the ledger is Unix milliseconds, UTC. Days and months are UTC
// calendar days and months: a report per day or month, an invoice per
// month and a monthly budget all use the same boundaries.

const (
	msPerHour = 3_600_000
	msPerDay  = 24 * msPerHour
)

// dayOf returns the day index (days since 1970-01-01) of t.
func dayOf(t int64) int64 {
	d := t / msPerDay
	if t%msPerDay < 0 {
		d--
	}
	return d
}

// hourOf returns the hour index of t.
func hourOf(t int64) int64 {
	h := t / msPerHour
	if t%msPerHour < 0 {
		h--
	}
	return h
}

// Month is a calendar month, UTC.
type Month struct {
	Year  int
	Month time.Month
}

// MonthOf returns the month that holds t.
func MonthOf(t int64) Month {
	u := time.UnixMilli(t).UTC()
	return Month{u.Year(), u.Month()}
}

// Start returns the month's first millisecond.
func (m Month) Start() int64 {
	return time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
}

// End returns the first millisecond of the next month.
func (m Month) End() int64 { return m.Next().Start() }

// Next returns the month after m.
func (m Month) Next() Month {
	if m.Month == time.December {
		return Month{m.Year + 1, time.January}
	}
	return Month{m.Year, m.Month + 1}
}

func (m Month) String() string { return fmt.Sprintf("%04d-%02d", m.Year, int(m.Month)) }

// Index numbers months in order (year x 12 + month - 1).
func (m Month) Index() int64 { return int64(m.Year)*12 + int64(m.Month) - 1 }

// ParseMonth reads YYYY-MM.
func ParseMonth(s string) (Month, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil {
		return Month{}, fmt.Errorf("month %q: want YYYY-MM such as 2026-12", s)
	}
	return Month{t.Year(), t.Month()}, nil
}

// Period is the length of one report row.
type Period uint8

// The periods of a report.
const (
	Daily Period = iota
	Monthly
)

func (p Period) String() string {
	if p == Monthly {
		return "month"
	}
	return "day"
}

// ParsePeriod reads "day" or "month".
func ParsePeriod(s string) (Period, error) {
	switch s {
	case "day":
		return Daily, nil
	case "month":
		return Monthly, nil
	}
	return 0, fmt.Errorf("period %q: want day or month", s)
}

// periodStart returns the start of the period holding t.
func (p Period) start(t int64) int64 {
	if p == Monthly {
		return MonthOf(t).Start()
	}
	return dayOf(t) * msPerDay
}

// next returns the start of the period after the one starting at s.
func (p Period) next(s int64) int64 {
	if p == Monthly {
		return MonthOf(s).End()
	}
	return s + msPerDay
}

// FormatTime writes t as RFC 3339 in UTC, to the millisecond when it has
// any.
func FormatTime(t int64) string {
	u := time.UnixMilli(t).UTC()
	if t%1000 != 0 {
		return u.Format("2006-01-02T15:04:05.000Z")
	}
	return u.Format(time.RFC3339)
}

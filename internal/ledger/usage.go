package ledger

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
)

// Usage is one record of what a job held: the scheduling core emits one
// for every change of a replica's holding. A record is open (ToMs 0) while
// the holding lasts and closed when it ends; the same ID may be fed open
// and later closed, and any record may be fed again (after a restart):
// metering is exactly once per ID and millisecond.
type Usage struct {
	// ID is unique per record and stable across restarts.
	ID string
	// Job, Tenant and Queue say whose usage it is; Kind is the job's
	// kind (training, batch, ...), kept for per-job reports.
	Job, Tenant, Queue, Kind string
	// Type is the accelerator type; Tier the capacity tier (committed,
	// on-demand, spot; empty means the ledger's default tier).
	Type, Tier string
	// Site is the domain that carries PUE, carbon intensity and price
	// multiplier; Node is the machine, for utilization samples.
	Site, Node string
	// Gang and Replica name the replica within the job.
	Gang, Replica int
	// Devices is how many devices the replica holds and Milli how much of
	// each (1000 is a whole device, 250 a quarter).
	Devices int
	Milli   int32
	// DeviceMask optionally names the devices held on Node (bit i is
	// device i), so that per-device utilization samples apply to them; 0
	// when not known.
	DeviceMask uint64
	// FromMs and ToMs bound the holding in Unix milliseconds; ToMs is 0
	// while the record is open.
	FromMs, ToMs int64
	// End says why a closed record ended: one of EndReasons.
	End string
}

// EndReasons are the values of Usage.End for a closed record.
var EndReasons = []string{"finished", "preempted", "shrunk", "failed", "cancelled", "requeued"}

// Open reports whether the record is still running.
func (u *Usage) Open() bool { return u.ToMs == 0 }

// Outcome says what feeding a record did.
type Outcome uint8

// The outcomes of Ledger.Add.
const (
	// Opened: a new open record; Meter meters it as time passes.
	Opened Outcome = iota
	// Metered: a new closed record, metered whole.
	Metered
	// Closed: an open record was closed and metered to its end.
	Closed
	// Duplicate: the record was fed before; nothing changed.
	Duplicate
)

var outcomeNames = [...]string{"opened", "metered", "closed", "duplicate"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", o)
}

// Errors a driver may want to tell apart (errors.Is).
var (
	// ErrInvalid: a field is missing or out of range.
	ErrInvalid = errors.New("invalid")
	// ErrConflict: a record with the same ID was fed before with other
	// content.
	ErrConflict = errors.New("conflicts with the record fed before under this ID")
	// ErrSealed: the record reaches before the sealed time, whose
	// metering is final.
	ErrSealed = errors.New("reaches before the sealed time")
	// ErrLate: a utilization sample is older than usage already metered
	// on its node.
	ErrLate = errors.New("is older than usage already metered on its node")
)

// UsageError is a problem with one record, naming the field.
type UsageError struct {
	ID    string
	Field string
	Msg   string
	Err   error // ErrInvalid, ErrConflict or ErrSealed
}

func (e *UsageError) Error() string {
	var b strings.Builder
	b.WriteString("usage ")
	if e.ID != "" {
		fmt.Fprintf(&b, "%q", e.ID)
	} else {
		b.WriteString("record")
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

func (e *UsageError) Unwrap() error { return e.Err }

func invalid(u *Usage, field, format string, args ...any) error {
	return &UsageError{ID: u.ID, Field: field, Msg: fmt.Sprintf(format, args...), Err: ErrInvalid}
}

// maxRecordMs bounds a record's length (ten years).
const maxRecordMs = 10 * 365 * msPerDay

// maxTimeMs bounds times at the year 2200.
const maxTimeMs = 7_258_118_400_000

// maxField bounds the length of names.
const maxField = 256

// check validates what can be checked of a record on its own, but for
// its type, tier and site (checkLine).
func (l *Ledger) check(u *Usage) error {
	if u.ID == "" {
		return invalid(u, "id", "must not be empty")
	}
	for _, f := range []struct {
		name, v  string
		required bool
	}{{"id", u.ID, true}, {"job", u.Job, true}, {"tenant", u.Tenant, true}, {"queue", u.Queue, false}, {"kind", u.Kind, false}, {"node", u.Node, false}} {
		if f.required && f.v == "" {
			return invalid(u, f.name, "must not be empty")
		}
		if len(f.v) > maxField {
			return invalid(u, f.name, "is longer than %d bytes", maxField)
		}
	}
	if u.Gang < 0 || u.Replica < 0 || u.Gang > 1<<20 || u.Replica > 1<<20 {
		return invalid(u, "gang", "gang %d, replica %d: want 0..%d", u.Gang, u.Replica, 1<<20)
	}
	if u.Devices < 1 || u.Devices > MaxDevices {
		return invalid(u, "devices", "%d, want 1..%d", u.Devices, MaxDevices)
	}
	if u.Milli < 1 || u.Milli > 1000 {
		return invalid(u, "milli", "%d, want 1..1000 (1000 is a whole device)", u.Milli)
	}
	if u.DeviceMask != 0 && bits.OnesCount64(u.DeviceMask) != u.Devices {
		return invalid(u, "deviceMask", "names %d devices, but devices is %d", bits.OnesCount64(u.DeviceMask), u.Devices)
	}
	if u.FromMs < 0 || u.FromMs > maxTimeMs {
		return invalid(u, "fromMs", "%d: want a Unix time in milliseconds, 0..%d", u.FromMs, int64(maxTimeMs))
	}
	if u.ToMs == 0 {
		if u.End != "" {
			return invalid(u, "end", "%q given for an open record (toMs 0)", u.End)
		}
		return nil
	}
	if u.ToMs < u.FromMs || u.ToMs > maxTimeMs {
		return invalid(u, "toMs", "%d is before fromMs %d", u.ToMs, u.FromMs)
	}
	if u.ToMs-u.FromMs > maxRecordMs {
		return invalid(u, "toMs", "the record is longer than ten years")
	}
	for _, r := range EndReasons {
		if u.End == r {
			return nil
		}
	}
	return invalid(u, "end", "%q: want one of %s", u.End, strings.Join(EndReasons, ", "))
}

// checkLine validates a record's type, tier and site, which name its line
// of the accounts.
func (l *Ledger) checkLine(u *Usage) error {
	if _, ok := l.typeIdx[u.Type]; !ok {
		return invalid(u, "type", "%q is not in the catalog (want one of %s)", u.Type, strings.Join(l.cfg.Catalog.Names(), ", "))
	}
	if u.Tier != "" {
		if _, err := ParseTier(u.Tier); err != nil {
			return invalid(u, "tier", "%q: want one of %s, or empty for %s", u.Tier, strings.Join(tierNames[:], ", "), l.defTier)
		}
	}
	if _, ok := l.siteIdx[u.Site]; !ok && l.defSite == nil {
		return invalid(u, "site", "%q is not a known site (want one of %s)", u.Site, strings.Join(l.siteNames(), ", "))
	}
	if len(u.Tenant) > maxField || len(u.Queue) > maxField {
		return invalid(u, "tenant", "tenant or queue is longer than %d bytes", maxField)
	}
	return nil
}

// fingerprints hash a record's identity (all but ToMs and End) and its
// whole content, so that a replay can be told from a conflicting record
// without keeping the record. Strings enter by their interned numbers
// (the line stands for tenant, queue, tier, type and site), so the hash
// mixes integers only.
func (l *Ledger) fingerprints(u *Usage, line, node int32, job idKey) (ident, full uint64) {
	h := uint64(0x9e3779b97f4a7c15)
	mix := func(x uint64) {
		h ^= x
		h *= 0xbf58476d1ce4e5b9
		h ^= h >> 31
	}
	mix(uint64(line))
	mix(uint64(node))
	mix(uint64(l.kindID(u.Kind)))
	mix(job[0])
	mix(job[1])
	mix(uint64(u.Gang)<<32 | uint64(u.Replica))
	mix(uint64(u.Devices)<<32 | uint64(u.Milli))
	mix(u.DeviceMask)
	mix(uint64(u.FromMs))
	ident = h
	mix(uint64(u.ToMs))
	mix(strHash(u.End))
	return ident, h
}

// kindID interns a job kind, remembering the last one.
func (l *Ledger) kindID(kind string) int32 {
	if l.lastKind.ok && kind == l.lastKind.name {
		return l.lastKind.id
	}
	id := l.kinds.id(kind)
	l.lastKind = lastNode{ok: true, name: kind, id: id}
	return id
}

// strHash is FNV-1a, 64 bits.
func strHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

package store

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gpufleet/gpufleet/internal/store/schema"
)

// Accounting keeps what the ledger is rebuilt from after a restart or at a
// new leader's term: every closed usage record, in the order it was
// committed, and the credit grants, commitments and budgets. They are extra
// records (Change.Records) of these kinds, so that both stores carry them
// and a usage record is durable exactly when the job state that ended its
// holding is (the loop's one commit writes both). Open holdings are not
// kept: they are running replicas, which the job records restore, and the
// ledger meters them again from their start.
const (
	// KindUsage records are keyed JOB/SEQ (UsageKey): a job's records are
	// read by the prefix JOB/, and SEQ, the record's place in commit
	// order, gives the ledger its replay order.
	KindUsage = "usage"
	// KindGrant records are keyed by the grant's ID, KindCommitment by the
	// commitment's and KindBudget by the tenant.
	KindGrant      = "grant"
	KindCommitment = "commitment"
	KindBudget     = "budget"
)

// The accounting records are the schema's: what is on disk changes only
// with the schema.
type (
	UsageRecord = schema.Usage
	Grant       = schema.Grant
	Commitment  = schema.Commitment
	Budget      = schema.Budget
)

// RecordReader reads extra records back: both stores implement it.
type RecordReader interface {
	Record(kind, key string) ([]byte, error)
	Records(kind, prefix string, fn func(key string, value []byte) bool) error
}

// UsageKey is the key of a job's usage record committed seq-th (seq from
// 1). Job IDs hold no '/' (they are names), so JOB/ selects one job's.
func UsageKey(job string, seq uint64) string {
	return job + "/" + fmt.Sprintf("%016x", seq)
}

// usageSeq is the commit order of a usage record's key.
func usageSeq(key string) (uint64, error) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 || len(key)-i-1 != 16 {
		return 0, fmt.Errorf("usage record key %q: want JOB/SEQ, SEQ 16 hex digits", key)
	}
	return strconv.ParseUint(key[i+1:], 16, 64)
}

// UsageChange is the record a commit writes for a closed usage record, the
// seq-th committed.
func UsageChange(u UsageRecord, seq uint64) (Record, error) {
	u.V = schema.Version
	data, err := json.Marshal(u)
	if err != nil {
		return Record{}, err
	}
	return Record{Kind: KindUsage, Key: UsageKey(u.Job, seq), Value: data, Create: true}, nil
}

// GrantChange is the record that creates a grant: a commit that carries it
// is refused (ErrExists) when a grant of its ID is stored.
func GrantChange(g Grant) (Record, error) {
	g.V = schema.Version
	return newRecord(KindGrant, g.ID, g)
}

// CommitmentChange is the record that creates a commitment, refused like
// GrantChange's when its ID is stored.
func CommitmentChange(c Commitment) (Record, error) {
	c.V = schema.Version
	return newRecord(KindCommitment, c.ID, c)
}

// BudgetChange is the record that sets a tenant's monthly budget, or
// deletes it when Monthly is 0.
func BudgetChange(b Budget) (Record, error) {
	if b.Monthly == 0 {
		return Record{Kind: KindBudget, Key: b.Tenant}, nil
	}
	b.V = schema.Version
	data, err := json.Marshal(b)
	if err != nil {
		return Record{}, err
	}
	return Record{Kind: KindBudget, Key: b.Tenant, Value: data}, nil
}

func newRecord(kind, key string, v any) (Record, error) {
	if key == "" {
		return Record{}, fmt.Errorf("%s record: empty key", kind)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return Record{}, err
	}
	return Record{Kind: kind, Key: key, Value: data, Create: true}, nil
}

// decode reads one accounting record, refusing versions this build does
// not know.
func decode[T any](kind, key string, data []byte, version func(*T) int) (T, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("%s record %q: %w", kind, key, err)
	}
	if n := version(&v); n < 0 || n > schema.Version {
		return v, fmt.Errorf("%s record %q: schema version %d: this build reads versions 0..%d; run a newer gpufleet", kind, key, n, schema.Version)
	}
	return v, nil
}

// Usage calls fn for every stored usage record in the order they were
// committed, with its place in that order, until fn returns false.
func Usage(r RecordReader, fn func(seq uint64, u *UsageRecord) bool) error {
	type rec struct {
		seq uint64
		u   UsageRecord
	}
	var all []rec
	var derr error
	err := r.Records(KindUsage, "", func(key string, value []byte) bool {
		seq, err := usageSeq(key)
		if err != nil {
			derr = err
			return false
		}
		u, err := decode(KindUsage, key, value, func(u *UsageRecord) int { return u.V })
		if err != nil {
			derr = err
			return false
		}
		all = append(all, rec{seq, u})
		return true
	})
	if err = cmp.Or(err, derr); err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b rec) int { return cmp.Compare(a.seq, b.seq) })
	for i := range all {
		if !fn(all[i].seq, &all[i].u) {
			return nil
		}
	}
	return nil
}

// JobUsage returns a job's stored usage records in commit order.
func JobUsage(r RecordReader, job string) ([]UsageRecord, error) {
	var out []UsageRecord
	var derr error
	err := r.Records(KindUsage, job+"/", func(key string, value []byte) bool {
		u, err := decode(KindUsage, key, value, func(u *UsageRecord) int { return u.V })
		if err != nil {
			derr = err
			return false
		}
		out = append(out, u)
		return true
	})
	return out, cmp.Or(err, derr)
}

// Grants returns every stored grant by ID.
func Grants(r RecordReader) ([]Grant, error) {
	return all(r, KindGrant, func(g *Grant) int { return g.V })
}

// Commitments returns every stored commitment by ID.
func Commitments(r RecordReader) ([]Commitment, error) {
	return all(r, KindCommitment, func(c *Commitment) int { return c.V })
}

// Budgets returns every stored budget by tenant.
func Budgets(r RecordReader) ([]Budget, error) {
	return all(r, KindBudget, func(b *Budget) int { return b.V })
}

func all[T any](r RecordReader, kind string, version func(*T) int) ([]T, error) {
	var out []T
	var derr error
	err := r.Records(kind, "", func(key string, value []byte) bool {
		v, err := decode(kind, key, value, version)
		if err != nil {
			derr = err
			return false
		}
		out = append(out, v)
		return true
	})
	return out, cmp.Or(err, derr)
}

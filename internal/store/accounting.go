package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Accounting keeps what the ledger is rebuilt from after a restart: every
// closed usage record, in the order it was committed, and the credit
// grants, commitments and budgets. Open holdings are not kept: they are
// running replicas, which the job records restore, and the ledger meters
// them again from their start.
var (
	bucketUsage       = []byte("usage")       // seq (8 bytes, big endian) -> UsageRecord
	bucketUsageByJob  = []byte("usagejobs")   // job id + 0 + seq -> nothing
	bucketGrants      = []byte("grants")      // grant id -> Grant
	bucketCommitments = []byte("commitments") // commitment id -> Commitment
	bucketBudgets     = []byte("budgets")     // tenant -> Budget
)

func init() {
	allBuckets = append(allBuckets, bucketUsage, bucketUsageByJob, bucketGrants, bucketCommitments, bucketBudgets)
}

// UsageVersion is the schema version of a stored usage record.
const UsageVersion = 1

// UsageRecord is a closed usage record as stored: one replica's holding of
// accelerators over an interval, as the scheduling core reported it when
// it ended. ID is the ledger's (one per holding: job, attempt, gang,
// replica, start); times are Unix milliseconds.
type UsageRecord struct {
	V       int    `json:"v"`
	ID      string `json:"id"`
	Job     string `json:"job"`
	Unit    string `json:"unit,omitempty"` // the core's job of an array job's unit
	Tenant  string `json:"tenant"`
	Queue   string `json:"queue"`
	Kind    string `json:"kind,omitempty"`
	Attempt int    `json:"attempt"`
	Gang    int    `json:"gang"`
	Replica int    `json:"replica"`
	Type    string `json:"type"`
	Tier    string `json:"tier,omitempty"`
	Site    string `json:"site,omitempty"`
	Node    string `json:"node"`
	Devices []int  `json:"devices"`
	Milli   int32  `json:"milli"`
	FromMs  int64  `json:"fromMs"`
	ToMs    int64  `json:"toMs"`
	End     string `json:"end"`
	// Intensity is the grid carbon intensity (gCO2/kWh) the scheduling
	// core planned the holding on, when it had a forecast (0: none); the
	// meter reads the site's measured series.
	Intensity float64 `json:"intensity,omitempty"`
}

// Grant is a credit grant as stored. Amount is in micro-units of the
// ledger's currency.
type Grant struct {
	V         int    `json:"v"`
	ID        string `json:"id"`
	Tenant    string `json:"tenant"`
	Queue     string `json:"queue,omitempty"`
	Kind      string `json:"kind"`
	Amount    int64  `json:"amount"`
	StartMs   int64  `json:"startMs"`
	ExpiresMs int64  `json:"expiresMs,omitempty"`
	CreatedMs int64  `json:"createdMs"`
}

// Commitment is a capacity commitment as stored; PricePerHour is in
// micro-units.
type Commitment struct {
	V            int    `json:"v"`
	ID           string `json:"id"`
	Tenant       string `json:"tenant"`
	Type         string `json:"type"`
	Site         string `json:"site,omitempty"`
	Count        int    `json:"count"`
	StartMs      int64  `json:"startMs"`
	EndMs        int64  `json:"endMs"`
	PricePerHour int64  `json:"pricePerHour"`
	CreatedMs    int64  `json:"createdMs"`
}

// Budget is a tenant's monthly budget as stored, in micro-units.
type Budget struct {
	V       int    `json:"v"`
	Tenant  string `json:"tenant"`
	Monthly int64  `json:"monthly"`
	SetMs   int64  `json:"setMs"`
}

// CommitUsage writes nodes, jobs and closed usage records in one
// transaction: a record is durable exactly when the job state that ended
// its holding is.
func (d *DB) CommitUsage(nodes []*Node, jobs []*Job, usage []UsageRecord) error {
	if len(usage) == 0 {
		return d.Commit(nodes, jobs)
	}
	return d.bolt.Update(func(tx *bolt.Tx) error {
		for _, n := range nodes {
			if err := putJSON(tx.Bucket(bucketNodes), []byte(n.Info.Name), n); err != nil {
				return err
			}
		}
		for _, j := range jobs {
			if err := putJob(tx, j); err != nil {
				return err
			}
		}
		ub, byJob := tx.Bucket(bucketUsage), tx.Bucket(bucketUsageByJob)
		for i := range usage {
			u := &usage[i]
			u.V = UsageVersion
			seq, err := ub.NextSequence()
			if err != nil {
				return err
			}
			k := seqKey(seq)
			if err := putJSON(ub, k, u); err != nil {
				return err
			}
			if err := byJob.Put(append(append([]byte(u.Job), 0), k...), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// Usage calls fn for every stored usage record in the order they were
// committed, until fn returns false.
func (d *DB) Usage(fn func(*UsageRecord) bool) error {
	return d.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketUsage).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var u UsageRecord
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("usage record %x: %w", k, err)
			}
			if !fn(&u) {
				return nil
			}
		}
		return nil
	})
}

// JobUsage returns a job's stored usage records in commit order.
func (d *DB) JobUsage(job string) ([]UsageRecord, error) {
	var out []UsageRecord
	err := d.bolt.View(func(tx *bolt.Tx) error {
		ub := tx.Bucket(bucketUsage)
		c := tx.Bucket(bucketUsageByJob).Cursor()
		prefix := append([]byte(job), 0)
		for k, _ := c.Seek(prefix); k != nil && len(k) == len(prefix)+8 && string(k[:len(prefix)]) == string(prefix); k, _ = c.Next() {
			var u UsageRecord
			if err := getJSON(ub, k[len(prefix):], &u); err != nil {
				return fmt.Errorf("usage record of job %s: %w", job, err)
			}
			out = append(out, u)
		}
		return nil
	})
	return out, err
}

// PutGrant stores a credit grant; an ID already stored is refused.
func (d *DB) PutGrant(g Grant) error {
	g.V = 1
	return d.putNew(bucketGrants, g.ID, g, "grant")
}

// Grants returns every grant by ID.
func (d *DB) Grants() ([]Grant, error) {
	var out []Grant
	return out, d.each(bucketGrants, func(v []byte) error {
		var g Grant
		err := json.Unmarshal(v, &g)
		out = append(out, g)
		return err
	})
}

// PutCommitment stores a commitment; an ID already stored is refused.
func (d *DB) PutCommitment(c Commitment) error {
	c.V = 1
	return d.putNew(bucketCommitments, c.ID, c, "commitment")
}

// Commitments returns every commitment by ID.
func (d *DB) Commitments() ([]Commitment, error) {
	var out []Commitment
	return out, d.each(bucketCommitments, func(v []byte) error {
		var c Commitment
		err := json.Unmarshal(v, &c)
		out = append(out, c)
		return err
	})
}

// PutBudget sets (Monthly 0: removes) a tenant's monthly budget.
func (d *DB) PutBudget(b Budget) error {
	b.V = 1
	return d.bolt.Update(func(tx *bolt.Tx) error {
		if b.Monthly == 0 {
			return tx.Bucket(bucketBudgets).Delete([]byte(b.Tenant))
		}
		return putJSON(tx.Bucket(bucketBudgets), []byte(b.Tenant), b)
	})
}

// Budgets returns every budget by tenant.
func (d *DB) Budgets() ([]Budget, error) {
	var out []Budget
	return out, d.each(bucketBudgets, func(v []byte) error {
		var b Budget
		err := json.Unmarshal(v, &b)
		out = append(out, b)
		return err
	})
}

// ErrExists is returned when an object's ID is taken.
var ErrExists = fmt.Errorf("exists")

func (d *DB) putNew(bucket []byte, id string, v any, what string) error {
	return d.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b.Get([]byte(id)) != nil {
			return fmt.Errorf("%s %s: %w", what, id, ErrExists)
		}
		return putJSON(b, []byte(id), v)
	})
}

func (d *DB) each(bucket []byte, fn func(v []byte) error) error {
	return d.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(_, v []byte) error { return fn(v) })
	})
}

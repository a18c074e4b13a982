package api

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// UsageRecordPage is the answer to GET /v1/usage/records: one page of the
// metered holdings that overlap [From, To), closed ones in the order
// they were committed. Next, when set, is the cursor to pass as "after"
// for the next page; the last page (Next empty) also carries the
// holdings still open and those closed but not yet committed. An open
// record has no To: it holds up to AsOf, the server's time of the answer.
type UsageRecordPage struct {
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	AsOf    time.Time     `json:"asOf"`
	Records []UsageRecord `json:"records"`
	Next    string        `json:"next,omitempty"`
}

// Page sizes of GET /v1/usage/records.
const (
	DefaultUsagePage = 1000
	MaxUsagePage     = 10000
)

// UsageRecordsQuery selects usage records.
type UsageRecordsQuery struct {
	// Tenant is one tenant's records (an admin's choice; a tenant's token
	// reads its own); empty: every tenant's the token may see.
	Tenant string
	// From and To bound the holdings listed: those that overlap [From,
	// To); zero: the month so far.
	From, To time.Time
	// After is the Next of the page before; Limit the page size (0: the
	// server's default).
	After string
	Limit int
}

// UsageRecords reads one page of usage records.
func (c *Client) UsageRecords(ctx context.Context, q UsageRecordsQuery) (UsageRecordPage, error) {
	v := url.Values{}
	if q.Tenant != "" {
		v.Set("tenant", q.Tenant)
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339))
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	path := "/v1/usage/records"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var p UsageRecordPage
	err := c.get(ctx, path, &p)
	return p, err
}

// AllUsageRecords reads every page of usage records: the records, and the
// server's time of the last page (what open records count up to).
func (c *Client) AllUsageRecords(ctx context.Context, q UsageRecordsQuery) ([]UsageRecord, UsageRecordPage, error) {
	var all []UsageRecord
	for {
		p, err := c.UsageRecords(ctx, q)
		if err != nil {
			return nil, p, err
		}
		all = append(all, p.Records...)
		if p.Next == "" {
			p.Records = nil
			return all, p, nil
		}
		if p.Next == q.After {
			return nil, p, fmt.Errorf("GET /v1/usage/records: the server answered the same cursor %q twice", p.Next)
		}
		q.After = p.Next
	}
}

package api

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// Usage reads a usage report.
func (c *Client) Usage(ctx context.Context, q UsageQuery) (UsageReport, error) {
	v := url.Values{}
	if q.Tenant != "" {
		v.Set("tenant", q.Tenant)
	}
	if len(q.By) > 0 {
		v.Set("by", strings.Join(q.By, ","))
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(DateLayout))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(DateLayout))
	}
	if q.Period != "" {
		v.Set("period", q.Period)
	}
	path := "/v1/usage"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var r UsageReport
	err := c.get(ctx, path, &r)
	return r, err
}

// DateLayout is how the API writes a date: a UTC day.
const DateLayout = "2006-01-02"

// JobUsage reads what was metered for a job, with its holdings.
func (c *Client) JobUsage(ctx context.Context, id string) (JobUsage, error) {
	var u JobUsage
	err := c.get(ctx, "/v1/usage/jobs/"+url.PathEscape(id), &u)
	return u, err
}

// Credits lists credit grants, balances and threshold events (a tenant's
// own; an admin's for every tenant, or one when tenant is given).
func (c *Client) Credits(ctx context.Context, tenant string) (CreditList, error) {
	path := "/v1/credits"
	if tenant != "" {
		path += "?tenant=" + url.QueryEscape(tenant)
	}
	var l CreditList
	err := c.get(ctx, path, &l)
	return l, err
}

// Grant grants credits to a tenant (admin only).
func (c *Client) Grant(ctx context.Context, g CreateGrant) (Grant, error) {
	var out Grant
	err := c.postJSON(ctx, "/v1/credits", g, &out)
	return out, err
}

// Budgets lists monthly budgets.
func (c *Client) Budgets(ctx context.Context) (BudgetList, error) {
	var l BudgetList
	err := c.get(ctx, "/v1/budgets", &l)
	return l, err
}

// SetBudget sets a tenant's monthly budget, or removes it with "0" (admin
// only).
func (c *Client) SetBudget(ctx context.Context, tenant string, monthly string) (Budget, error) {
	var out Budget
	err := c.send(ctx, http.MethodPut, "/v1/budgets/"+url.PathEscape(tenant), SetBudget{Monthly: jsonNumber(monthly)}, &out)
	return out, err
}

// Commitments lists commitments.
func (c *Client) Commitments(ctx context.Context, tenant string) (CommitmentList, error) {
	path := "/v1/commitments"
	if tenant != "" {
		path += "?tenant=" + url.QueryEscape(tenant)
	}
	var l CommitmentList
	err := c.get(ctx, path, &l)
	return l, err
}

// CreateCommitment records a commitment (admin only).
func (c *Client) CreateCommitment(ctx context.Context, cm CreateCommitment) (Commitment, error) {
	var out Commitment
	err := c.postJSON(ctx, "/v1/commitments", cm, &out)
	return out, err
}

// Invoice reads a tenant's invoice for a month (YYYY-MM).
func (c *Client) Invoice(ctx context.Context, tenant, month string) (Invoice, error) {
	v := url.Values{}
	v.Set("tenant", tenant)
	v.Set("month", month)
	var inv Invoice
	err := c.get(ctx, "/v1/invoices?"+v.Encode(), &inv)
	return inv, err
}

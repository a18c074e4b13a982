package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/ledger"
	"github.com/gpufleet/gpufleet/internal/plan"
	"github.com/gpufleet/gpufleet/internal/spec"
)

// The plan's metered-usage sources: the live server's usage records
// (GET /v1/usage/records), read from the server (--history server) or
// from a file `gpufleet usage --records -o jsonl` wrote (--history
// usage:FILE). docs/PLANNING.md says when metered usage is the right
// history and when demand at submission is.

const (
	historyServer      = "server"
	historyUsagePrefix = "usage:"
	// defaultUsageWeeks is how far back --history server reads by default.
	defaultUsageWeeks = 12
)

// usageSourceOpts are the plan's flags for the metered-usage sources.
type usageSourceOpts struct {
	client   clientFlags
	from, to string
	tenant   string
}

func addUsageSourceFlags(c *cobra.Command, o *usageSourceOpts) {
	f := c.Flags()
	f.StringVar(&o.client.server, "server", "", "with --history server: the server `URL` (default $GPUFLEET_SERVER, the config file, or "+DefaultServer+")")
	f.StringVar(&o.client.token, "token", "", "with --history server: the bearer `TOKEN` (default $GPUFLEET_TOKEN or the config file)")
	f.StringVar(&o.from, "from", "", fmt.Sprintf("with --history server: the history's start, a `DATE` or an RFC 3339 time (default: %d weeks before today)", defaultUsageWeeks))
	f.StringVar(&o.to, "to", "", "with --history server: the history's end, a `DATE` (inclusive) or an RFC 3339 time (default: now)")
	f.StringVar(&o.tenant, "tenant", "", "with --history server: one tenant's usage (a tenant's token: its own)")
	o.client.output = "table"
}

// isUsageSource reports whether a --history names a metered-usage source.
func isUsageSource(history string) bool {
	return history == historyServer || strings.HasPrefix(history, historyUsagePrefix)
}

// checkUsageFlags refuses the metered-usage flags with another source.
func checkUsageFlags(c *cobra.Command, history string) error {
	if history == historyServer {
		return nil
	}
	for _, name := range []string{"server", "token", "from", "to", "tenant"} {
		if c.Flags().Changed(name) {
			return fmt.Errorf("--%s: goes with --history server (the live server's metered usage), not --history %s", name, history)
		}
	}
	return nil
}

// usageHistory reads a metered-usage history: the records, into series
// of accelerator-hours per step (1h unless --step says otherwise).
func usageHistory(ctx context.Context, history string, o usageSourceOpts, step time.Duration, now time.Time) (plan.History, string, error) {
	if step == 0 {
		step = time.Hour
	}
	if step%time.Second != 0 || plan.WeekSec%int64(step/time.Second) != 0 {
		return plan.History{}, "", fmt.Errorf("--step %s: want a whole number of seconds that divides a week (1h, 24h, 168h)", step)
	}
	var page api.UsageRecordPage
	var source string
	if history == historyServer {
		q := api.UsageRecordsQuery{Tenant: o.tenant, To: now}
		q.From = now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -7*defaultUsageWeeks)
		var err error
		if o.from != "" {
			if q.From, err = parseWhen("from", o.from); err != nil {
				return plan.History{}, "", err
			}
		}
		if o.to != "" {
			if q.To, err = parseUntil("to", o.to); err != nil {
				return plan.History{}, "", err
			}
		}
		if !q.To.After(q.From) {
			return plan.History{}, "", fmt.Errorf("--to %s: want a time after --from %s", q.To.UTC().Format(time.RFC3339), q.From.UTC().Format(time.RFC3339))
		}
		cl, err := o.client.client()
		if err != nil {
			return plan.History{}, "", err
		}
		recs, last, err := cl.AllUsageRecords(ctx, q)
		if err != nil {
			return plan.History{}, "", err
		}
		page, page.Records = last, recs
		source = "the server's metered usage"
	} else {
		path := strings.TrimPrefix(history, historyUsagePrefix)
		if path == "" {
			return plan.History{}, "", fmt.Errorf("--history usage:FILE: name the file that gpufleet usage --records -o jsonl wrote")
		}
		data, err := readFile(path, spec.MaxFileBytes)
		if err != nil {
			return plan.History{}, "", err
		}
		if page, err = parseUsageFile(data, path); err != nil {
			return plan.History{}, "", err
		}
		source = filepath.Base(path)
	}
	us := ledgerUsage(page.Records)
	to := page.To
	if page.AsOf.Before(to) {
		to = page.AsOf
	}
	h, err := plan.MeteredHistory(us, int64(step/time.Second), page.From.UnixMilli(), to.UnixMilli())
	if err != nil {
		return plan.History{}, "", fmt.Errorf("%s: %w", source, err)
	}
	if len(h.Series) == 0 {
		return plan.History{}, "", fmt.Errorf("%s: no accelerator usage from %s to %s", source, page.From.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return h, fmt.Sprintf("%s (%d records, %s to %s)", source, len(us), page.From.Format(time.RFC3339), to.Format(time.RFC3339)), nil
}

// parseUntil reads the end of a window for a flag: a date is inclusive
// (up to the next midnight, UTC), an RFC 3339 time exact.
func parseUntil(flag, s string) (time.Time, error) {
	if t, err := time.Parse(api.DateLayout, s); err == nil {
		return t.AddDate(0, 0, 1), nil
	}
	return parseWhen(flag, s)
}

// usageRecords is gpufleet usage --records: every page of the records
// that overlap the window, as a table, JSON (one object, as one page) or
// JSON Lines (the file --history usage:FILE reads).
func usageRecords(cmd *cobra.Command, f *clientFlags, tenant, from, to string) error {
	q := api.UsageRecordsQuery{Tenant: tenant}
	var err error
	if from != "" {
		if q.From, err = parseWhen("from", from); err != nil {
			return err
		}
	}
	if to != "" {
		if q.To, err = parseUntil("to", to); err != nil {
			return err
		}
	}
	cl, err := f.client()
	if err != nil {
		return err
	}
	recs, page, err := cl.AllUsageRecords(cmd.Context(), q)
	if err != nil {
		return err
	}
	page.Records = recs
	if page.Records == nil {
		page.Records = []api.UsageRecord{}
	}
	w := cmd.OutOrStdout()
	switch f.output {
	case "jsonl":
		return writeUsageFile(w, page)
	case "csv":
		return fmt.Errorf("--records -o csv: the records are written as table, json, jsonl or yaml")
	}
	return f.emit(w, page, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "JOB\tTENANT\tQUEUE\tKIND\tTYPE\tDEVICES\tFROM\tTO\tACCEL-HOURS")
		for _, r := range page.Records {
			end := "open"
			if r.To != nil {
				end = r.To.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.4f\n", r.Job, r.Tenant, r.Queue, r.Kind, r.Type, devicesOf(r),
				r.From.Format(time.RFC3339), end, float64(r.AcceleratorMilliMs)/3.6e9)
		}
	})
}

func devicesOf(r api.UsageRecord) string {
	if r.Milli > 0 && r.Milli < 1000 {
		return fmt.Sprintf("%dx%.3g", len(r.Devices), float64(r.Milli)/1000)
	}
	return fmt.Sprint(len(r.Devices))
}

// ledgerUsage reads the API's records as the ledger's.
func ledgerUsage(rs []api.UsageRecord) []ledger.Usage {
	out := make([]ledger.Usage, 0, len(rs))
	for _, r := range rs {
		u := ledger.Usage{ID: r.ID, Job: r.Job, Tenant: r.Tenant, Queue: r.Queue, Kind: r.Kind, Type: r.Type, Tier: r.Tier, Site: r.Site,
			Node: r.Node, Gang: r.Gang, Replica: r.Replica, Devices: len(r.Devices), Milli: r.Milli, FromMs: r.From.UnixMilli(), End: r.End}
		if r.To != nil {
			u.ToMs = r.To.UnixMilli()
		}
		out = append(out, u)
	}
	return out
}

// usageFileHeader is the first line of a usage records file: the window
// the records were read for and the server's time then (what open
// records held up to).
type usageFileHeader struct {
	UsageRecords *usageWindow `json:"usageRecords"`
}

type usageWindow struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	AsOf time.Time `json:"asOf"`
}

// writeUsageFile writes records as JSON Lines: the header, then one
// record a line.
func writeUsageFile(w io.Writer, p api.UsageRecordPage) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	h := usageFileHeader{UsageRecords: &usageWindow{p.From.UTC(), p.To.UTC(), p.AsOf.UTC()}}
	if err := enc.Encode(h); err != nil {
		return err
	}
	for i := range p.Records {
		if err := enc.Encode(&p.Records[i]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// maxUsageDevices bounds a record's devices (no node has more).
const maxUsageDevices = 1024

// parseUsageFile reads what writeUsageFile wrote, strictly: a header line,
// then records with no unknown field, each with its job, tenant, type,
// devices and times. Errors name file:line:column and the field.
func parseUsageFile(data []byte, path string) (api.UsageRecordPage, error) {
	var p api.UsageRecordPage
	at := func(line, col int, field, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		if field != "" {
			msg = field + ": " + msg
		}
		return fmt.Errorf("%s:%d:%d: %s", path, line, col, msg)
	}
	const header = `the first line is the header {"usageRecords":{"from":...,"to":...,"asOf":...}}`
	decode := func(line int, text []byte, v any) error {
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		err := dec.Decode(v)
		if err == nil && dec.More() {
			return at(line, int(dec.InputOffset())+1, "", "more than one JSON value on the line")
		}
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &syn):
			return at(line, int(syn.Offset), "", "%v", err)
		case errors.As(err, &typ):
			return at(line, int(typ.Offset), typ.Field, "want a %s, not a JSON %s", typ.Type, typ.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field ") && line == 1:
			return at(line, 1, "usageRecords", "missing: %s", header)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return at(line, 1, strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field: want a usage record's fields (id, job, tenant, queue, kind, type, devices, milli, from, to, ...)")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return at(line, len(text)+1, "", "the line ends inside a JSON value")
		case err == io.EOF:
			return at(line, 1, "", "empty line")
		default:
			return at(line, 1, "", "%v", err)
		}
	}
	lines := bytes.Split(bytes.TrimPrefix(data, []byte("\ufeff")), []byte("\n"))
	if n := len(lines); n > 0 && len(bytes.TrimSpace(lines[n-1])) == 0 {
		lines = lines[:n-1]
	}
	if len(lines) == 0 {
		return p, fmt.Errorf("%s: empty: want the header line of gpufleet usage --records -o jsonl, then its records", path)
	}
	var h usageFileHeader
	if err := decode(1, lines[0], &h); err != nil {
		return p, err
	}
	switch {
	case h.UsageRecords == nil:
		return p, at(1, 1, "usageRecords", "missing: %s", header)
	case h.UsageRecords.From.IsZero() || h.UsageRecords.AsOf.IsZero():
		return p, at(1, 1, "usageRecords", "want from, to and asOf, RFC 3339 times")
	case !h.UsageRecords.To.After(h.UsageRecords.From):
		return p, at(1, 1, "usageRecords.to", "%s is not after from %s", h.UsageRecords.To.Format(time.RFC3339), h.UsageRecords.From.Format(time.RFC3339))
	}
	p.From, p.To, p.AsOf = h.UsageRecords.From, h.UsageRecords.To, h.UsageRecords.AsOf
	seen := map[string]int{}
	for i, text := range lines[1:] {
		line := i + 2
		var r api.UsageRecord
		if err := decode(line, text, &r); err != nil {
			return p, err
		}
		field, msg := "", ""
		switch {
		case r.ID == "":
			field, msg = "id", "missing"
		case seen[r.ID] != 0:
			field, msg = "id", fmt.Sprintf("%q is the record of line %d too", r.ID, seen[r.ID])
		case r.Job == "":
			field, msg = "job", "missing"
		case r.Tenant == "":
			field, msg = "tenant", "missing"
		case len(r.Devices) > maxUsageDevices:
			field, msg = "devices", fmt.Sprintf("%d devices: want at most %d", len(r.Devices), maxUsageDevices)
		case r.Milli < 0 || r.Milli > 1000:
			field, msg = "milli", fmt.Sprintf("%d: want 0..1000 (a share of each device in thousandths)", r.Milli)
		case r.From.IsZero():
			field, msg = "from", "missing: want an RFC 3339 time"
		case r.To != nil && r.To.Before(r.From):
			field, msg = "to", fmt.Sprintf("%s is before from %s", r.To.Format(time.RFC3339), r.From.Format(time.RFC3339))
		case r.To == nil && r.From.After(p.AsOf):
			field, msg = "from", fmt.Sprintf("an open record from %s, after the header's asOf %s", r.From.Format(time.RFC3339), p.AsOf.Format(time.RFC3339))
		}
		if field != "" {
			return p, at(line, 1, field, "%s", msg)
		}
		seen[r.ID] = line
		p.Records = append(p.Records, r)
	}
	return p, nil
}

package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gpufleet/gpufleet/internal/api"
)

// What writeUsageFile writes, parseUsageFile reads back as it was.
func TestUsageFileRoundTrips(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	end := at("2026-12-01T02:00:00Z")
	want := api.UsageRecordPage{From: at("2026-12-01T00:00:00Z"), To: at("2026-12-02T00:00:00Z"), AsOf: at("2026-12-01T03:00:00Z"),
		Records: []api.UsageRecord{
			{ID: "train-1/1/0/0@1", Job: "train-1", Tenant: "acme", Queue: "acme-train", Kind: "training", Attempt: 1, Node: "n1", Type: "h100",
				Tier: "on-demand", Devices: []int{0, 1}, Milli: 1000, From: at("2026-12-01T01:00:00Z"), To: &end, End: "finished", AcceleratorMilliMs: 7_200_000_000},
			{ID: "nb-2/1/0/0@1", Job: "nb-2", Tenant: "acme", Queue: "acme-train", Kind: "batch", Attempt: 1, Node: "n2", Type: "h100",
				Tier: "spot", Devices: []int{3}, Milli: 250, From: at("2026-12-01T01:30:00Z")},
		}}
	var buf bytes.Buffer
	if err := writeUsageFile(&buf, want); err != nil {
		t.Fatal(err)
	}
	got, err := parseUsageFile(buf.Bytes(), "usage.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
}

// Each problem names the line, the column where it is known, the field and
// what it takes.
func TestUsageFileErrors(t *testing.T) {
	const head = `{"usageRecords":{"from":"2026-12-01T00:00:00Z","to":"2026-12-02T00:00:00Z","asOf":"2026-12-01T12:00:00Z"}}` + "\n"
	const rec = `{"id":"a","job":"a","tenant":"acme","type":"h100","devices":[0],"milli":1000,"from":"2026-12-01T01:00:00Z"`
	for name, c := range map[string]struct{ data, want string }{
		"empty":       {"", "u.jsonl: empty: want the header line"},
		"no header":   {rec + "}\n", "u.jsonl:1:1: usageRecords: missing: the first line is the header"},
		"bad window":  {`{"usageRecords":{"from":"2026-12-02T00:00:00Z","to":"2026-12-01T00:00:00Z","asOf":"2026-12-01T00:00:00Z"}}`, "u.jsonl:1:1: usageRecords.to: 2026-12-01T00:00:00Z is not after from 2026-12-02T00:00:00Z"},
		"no asOf":     {`{"usageRecords":{"from":"2026-12-01T00:00:00Z","to":"2026-12-02T00:00:00Z"}}`, "u.jsonl:1:1: usageRecords: want from, to and asOf"},
		"syntax":      {head + `{"id":"a",` + "\n", "u.jsonl:2:11: the line ends inside a JSON value"},
		"type":        {head + `{"id":"a","milli":"all"}`, `u.jsonl:2:23: milli: want a int32, not a JSON string`},
		"unknown":     {head + rec + `,"colour":"red"}`, "u.jsonl:2:1: colour: unknown field"},
		"two values":  {head + rec + "} {}", "u.jsonl:2:"},
		"blank line":  {head + "\n" + rec + "}", "u.jsonl:2:1: empty line"},
		"no id":       {head + `{"job":"a"}`, "u.jsonl:2:1: id: missing"},
		"twice":       {head + rec + "}\n" + rec + "}", `u.jsonl:3:1: id: "a" is the record of line 2 too`},
		"no job":      {head + `{"id":"a"}`, "u.jsonl:2:1: job: missing"},
		"no tenant":   {head + `{"id":"a","job":"a"}`, "u.jsonl:2:1: tenant: missing"},
		"milli":       {head + strings.Replace(rec, `"milli":1000`, `"milli":-1`, 1) + "}", "u.jsonl:2:1: milli: -1: want 0..1000"},
		"no from":     {head + `{"id":"a","job":"a","tenant":"acme"}`, "u.jsonl:2:1: from: missing"},
		"to first":    {head + rec + `,"to":"2026-12-01T00:00:00Z"}`, "u.jsonl:2:1: to: 2026-12-01T00:00:00Z is before from 2026-12-01T01:00:00Z"},
		"open future": {head + strings.Replace(rec, "01T01", "01T13", 1) + "}", "u.jsonl:2:1: from: an open record from 2026-12-01T13:00:00Z, after the header's asOf"},
	} {
		_, err := parseUsageFile([]byte(c.data), "u.jsonl")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", name, err, c.want)
		}
	}
}

// The parser never panics, and what it accepts writes back to a file it
// reads the same.
func FuzzParseUsageFile(f *testing.F) {
	f.Add([]byte(`{"usageRecords":{"from":"2026-12-01T00:00:00Z","to":"2026-12-02T00:00:00Z","asOf":"2026-12-01T12:00:00Z"}}` + "\n" +
		`{"id":"a","job":"a","tenant":"acme","kind":"batch","type":"h100","devices":[0],"milli":250,"from":"2026-12-01T01:00:00Z","to":"2026-12-01T02:00:00Z","end":"finished"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseUsageFile(data, "f.jsonl")
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := writeUsageFile(&buf, p); err != nil {
			t.Fatal(err)
		}
		again, err := parseUsageFile(buf.Bytes(), "f.jsonl")
		if err != nil {
			t.Fatalf("written back, refused: %v\n%s", err, buf.Bytes())
		}
		if len(again.Records) != len(p.Records) || !again.From.Equal(p.From) || !again.AsOf.Equal(p.AsOf) {
			t.Fatalf("read back %+v, want %+v", again, p)
		}
		us := ledgerUsage(p.Records)
		if len(us) != len(p.Records) {
			t.Fatalf("%d records became %d", len(p.Records), len(us))
		}
	})
}

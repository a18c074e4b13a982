package server

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/store"
)

// FuzzListingParams: any query string a listing may get is either taken,
// with values in range, or refused naming the parameter at fault.
func FuzzListingParams(f *testing.F) {
	for _, q := range []string{"", "state=pending", "order=newest&before=12&limit=50", "after=3&order=oldest", "tenant=acme&kind=batch",
		"queue=globex-batch", "limit=0", "before=x", "state=%ff", "kind=service&queue=acme-train&tenant=globex", "order=newest&after=1"} {
		f.Add(q, true)
		f.Add(q, false)
	}
	s := &Server{}
	s.queues.Store(newQueueIndex(testQueues()))
	fields := []string{"state", "queue", "tenant", "kind", "order", "limit", "after", "before"}
	f.Fuzz(func(t *testing.T, raw string, admin bool) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		p := principal{role: store.RoleTenant, tenant: "acme"}
		if admin {
			p = principal{role: store.RoleAdmin}
		}
		filter, e := s.parseFilter(q, p)
		if e != nil {
			if e.Status != 422 || !slices.Contains(fields, e.Field) || !strings.Contains(e.Message, "want") && !strings.Contains(e.Message, "no ") {
				t.Fatalf("%q: refusal %+v", raw, e)
			}
			return
		}
		if filter.state != "" && !slices.Contains(store.States, filter.state) {
			t.Fatalf("%q: took state %q", raw, filter.state)
		}
		if !admin && filter.tenant != "" && filter.tenant != "acme" {
			t.Fatalf("%q: a tenant token took tenant %q", raw, filter.tenant)
		}
		pg, e := parsePage(q)
		if e != nil {
			if e.Status != 422 || !slices.Contains(fields, e.Field) {
				t.Fatalf("%q: refusal %+v", raw, e)
			}
			return
		}
		if pg.limit < 1 || pg.limit > api.MaxJobPage {
			t.Fatalf("%q: took limit %d", raw, pg.limit)
		}
	})
}

// FuzzLastEventID: a resumption id of any shape is taken or answered
// with a reset, and what is resumed is never older than the id.
func FuzzLastEventID(f *testing.F) {
	for _, id := range []string{"", "abcd1234-3", "abcd1234-0", "x-1", "-", "abcd1234-99999999999999999999", "abcd1234--1", "abcd1234-5-6"} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		fd := newFeed(&Server{})
		fd.epoch = "abcd1234"
		fd.validFrom = 1
		for range 5 {
			fd.publish(streamEvent{typ: api.StreamNode, data: []byte(`{}`)})
		}
		sub, backlog, reset := fd.subscribe(principal{role: store.RoleAdmin}, id)
		defer fd.unsubscribe(sub)
		if reset && len(backlog) > 0 {
			t.Fatalf("%q: a reset with a backlog", id)
		}
		if reset || id == "" {
			return
		}
		// Taken: the id is this run's and names an event still held.
		seq, err := strconv.ParseUint(strings.TrimPrefix(id, "abcd1234-"), 10, 64)
		if err != nil || seq >= fd.next {
			t.Fatalf("%q: taken", id)
		}
		if len(backlog) != int(fd.next-1-seq) {
			t.Fatalf("%q: %d events resumed, want %d", id, len(backlog), fd.next-1-seq)
		}
		for _, ev := range backlog {
			if ev.id <= seq {
				t.Fatalf("%q: resumed event %d, which is not after it", id, ev.id)
			}
		}
	})
}

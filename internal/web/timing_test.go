package web_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/gpufleet/gpufleet/internal/store/storetest"
)

// viewTiming is one view drawn: browser time from the view's start (the
// click or the navigation) to its data drawn, and server time, the
// longest of its requests from sent to last byte.
type viewTiming struct {
	Browser, Server float64
}

// timing reads the last drawing of a view from the page's performance
// entries: the dashboard measures "view:NAME" from the start of a view to
// its data drawn; first load counts from the navigation itself.
func timing(b *browser, view string, first bool) viewTiming {
	return eval[viewTiming](b, fmt.Sprintf(`(() => {
		const m = performance.getEntriesByName('view:' + %q).at(-1);
		const from = %v ? 0 : m.startTime;
		let server = 0;
		for (const r of performance.getEntriesByType('resource')) {
			if (r.startTime >= from - 1 && r.responseEnd > 0) server = Math.max(server, r.responseEnd - r.requestStart);
		}
		return { Browser: %v ? m.startTime + m.duration : m.duration, Server: server };
	})()`, view, first, first))
}

func pct(v []float64, p int) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

// BenchmarkDashboardBrowser measures, in headless Chromium against a
// server with 100,000 jobs stored, the first load (cache disabled: every
// file fetched) and each view, in browser time and server time; it
// reports the 50th and 95th percentiles per view.
func BenchmarkDashboardBrowser(b *testing.B) {
	br := newBrowser(b, 1440, 900)
	dir := b.TempDir()
	var nodes []string
	for _, n := range planeNodes {
		nodes = append(nodes, n.name)
	}
	start := time.Now()
	ids, err := storetest.Fill(dir, storetest.Seed{Jobs: 100_000, Pending: 2_000, Queues: []string{"acme-train", "globex-batch"},
		TenantOf: map[string]string{"acme-train": "acme", "globex-batch": "globex"}, Nodes: nodes, End: time.Now(), Tree: planeQueues()})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded 100,000 jobs in %v", time.Since(start).Round(time.Millisecond))
	p := startPlane(b, dir, false)
	pending := ids[len(ids)-1]
	finished := ids[len(ids)/2]
	br.step("load", chromedp.Navigate(p.url+"/#/fleet"))
	br.signIn(p.s.AdminToken(), "fleet")
	views := []struct{ name, hash, view string }{
		{"fleet", "#/fleet", "fleet"},
		{"queues", "#/queues", "queues"},
		{"jobs", "#/jobs", "jobs"},
		{"jobs-failed", "#/jobs?state=failed", "jobs"},
		{"jobs-pending", "#/jobs?state=pending", "jobs"},
		{"job-pending", "#/job/" + pending, "job"},
		{"job-finished", "#/job/" + finished, "job"},
		{"submit", "#/submit", "submit"},
	}
	got := map[string][]viewTiming{}
	for b.Loop() {
		// First load, every file fetched anew.
		br.step("no cache", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, t, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true})
			return err
		}), chromedp.Navigate("about:blank"))
		br.step("first load", chromedp.Navigate(p.url+"/#/fleet"))
		br.until("the first view", `document.getElementById('view').dataset.ready === 'fleet'`)
		got["first-load"] = append(got["first-load"], timing(br, "fleet", true))
		eval[bool](br, `(performance.setResourceTimingBufferSize(100000), true)`)
		for _, v := range views {
			br.open(v.hash, v.view)
			// The view's requests have ended when it is drawn; their
			// entries are there.
			got[v.name] = append(got[v.name], timing(br, v.view, false))
		}
	}
	b.StopTimer()
	var lines []string
	for _, name := range append([]string{"first-load"}, func() (out []string) {
		for _, v := range views {
			out = append(out, v.name)
		}
		return
	}()...) {
		var bt, st []float64
		for _, t := range got[name] {
			bt, st = append(bt, t.Browser), append(st, t.Server)
		}
		b.ReportMetric(pct(bt, 95), name+"-browser-p95-ms")
		b.ReportMetric(pct(st, 95), name+"-server-p95-ms")
		lines = append(lines, fmt.Sprintf("%-14s browser p50 %6.1f p95 %6.1f ms   server p50 %6.1f p95 %6.1f ms   (%d loads)",
			name, pct(bt, 50), pct(bt, 95), pct(st, 50), pct(st, 95), len(bt)))
	}
	b.Log("\n" + strings.Join(lines, "\n"))
	if probs := br.problems(); len(probs) > 0 {
		b.Errorf("the page reported problems:\n%s", strings.Join(probs, "\n"))
	}
}

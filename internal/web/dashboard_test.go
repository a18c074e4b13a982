package web_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/gpufleet/gpufleet/internal/api"
)

const secretJob = `name: globex-secret
queue: globex-batch
kind: batch
gangs:
  - replicas: 1
    accelerators: h100
    count: 4
estimatedRuntime: 1h
command: [sh, -c, 'echo globex private output; sleep 600']
`

// waiter needs the whole h100 fleet, which globex's job holds part of for
// an hour: it waits for capacity, with an earliest start.
const waiterJob = `name: waiter
queue: acme-train
kind: training
gangs:
  - replicas: 2
    accelerators: h100
    count: 8
estimatedRuntime: 10m
command: [sleep, "5"]
`

// The output and the command are markup that must stay text.
const xssJob = `name: xss
queue: acme-train
kind: batch
gangs:
  - replicas: 1
    accelerators: h200
    count: 1
estimatedRuntime: 1m
command: [sh, -c, 'echo "<img src=x onerror=window.__xss=1><script>window.__xss=2</script>" # <b>bold</b>']
`

const blockerJob = `name: blocker
queue: acme-train
kind: batch
gangs:
  - replicas: 1
    accelerators: h100
    count: 8
estimatedRuntime: 40s
command: [sleep, "15"]
`

// watchJob is what the person submits: it waits for the blocker's node,
// then prints a line a second.
const watchJob = `name: watch
queue: acme-train
kind: batch
gangs:
  - replicas: 1
    accelerators: h100
    count: 8
estimatedRuntime: 1m
command: [sh, -c, 'for i in $(seq 1 60); do echo "line $i"; sleep 1; done']
`

// chatService starts a replica that never becomes ready (nothing answers
// its readiness path): it stays starting, never killed for it.
const chatService = `name: chat
queue: acme-train
kind: service
service:
  replica: {accelerators: h200, count: 1}
  minReplicas: 1
  maxReplicas: 2
  target: {inFlight: 4}
command: [sleep, "600"]
`

// globexService is at zero replicas: nothing is placed for it.
const globexService = `name: globex-chat
queue: globex-batch
kind: service
service:
  replica: {accelerators: h100, count: 1}
  minReplicas: 0
  maxReplicas: 2
  target: {inFlight: 4}
command: [sleep, "600"]
`

const badJob = `name: bad
queue: acme-train
kind: batch
gangs:
  - replicas: 1
    accelerators: h100
    count: lots
command: [true]
`

// TestDashboard signs in as a tenant and as an admin in a real headless
// Chromium against a live plane (server and agents on loopback), opens
// every view, submits a job from the editor and watches it go from pending
// (with its reason and earliest start) to running with its log streaming,
// cancels it, and checks that the tenant's pages hold nothing of the other
// tenant's, that user data stays text, that every control has a name,
// that the keyboard reaches the views, and that the page raised no error
// and broke no rule of its security policy. Screenshots of every view go
// to $GPUFLEET_SCREENSHOTS (or the test's temporary directory).
func TestDashboard(t *testing.T) {
	b := newBrowser(t, 1440, 900)
	p := startPlane(t, "", true)
	t.Logf("screenshots in %s", b.dir)

	secret := p.submit("globex", secretJob)
	p.waitState(secret.ID, "running")
	xss := p.submit("acme", xssJob)
	p.waitState(xss.ID, "succeeded")
	waiter := p.submit("acme", waiterJob)
	chat := p.submit("acme", chatService)
	globexChat := p.submit("globex", globexService)

	b.step("load", chromedp.Navigate(p.url+"/"))
	b.until("the sign-in form", `!document.getElementById('signin').hidden`)
	if bad := b.unlabelled(); len(bad) > 0 {
		t.Errorf("sign-in: controls without a name: %v", bad)
	}
	b.shot("01-sign-in")

	// A wrong token is refused in words.
	b.step("wrong token", chromedp.SetValue(chromedp.CSS("#token"), "gft_nosuchtoken"), chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)))
	b.until("the refusal", `document.getElementById('signin-error').textContent.includes('does not know this token')`)

	// The tenant.
	b.signIn(p.tokens["acme"], "fleet")
	isolated := func(view string) {
		t.Helper()
		if m := b.markup(); strings.Contains(m, "globex") {
			t.Errorf("%s: the tenant's page names the other tenant:\n%s", view, m)
		}
		if bad := b.unlabelled(); len(bad) > 0 {
			t.Errorf("%s: controls without a name: %v", view, bad)
		}
	}
	b.until("the node map", `document.querySelectorAll('.node').length === 3`)
	// Views whose routes the server has are in the navigation: this
	// server serves services and usage.
	b.until("the usage and services links", `!document.querySelector('#nav a[data-feature="/v1/usage"]').hidden && !document.querySelector('#nav a[data-feature="/v1/services"]').hidden`)
	if got := b.text("#who-name"); got != "tenant acme" {
		t.Errorf("signed in as %q, want tenant acme", got)
	}
	isolated("fleet")
	b.shot("02-tenant-fleet")

	b.open("#/queues", "queues")
	b.until("acme's queues", `document.getElementById('view').innerText.includes('acme-train')`)
	isolated("queues")
	b.shot("03-tenant-queues")

	// Services: the tenant's own, with its endpoint and bounds; its page
	// with the replica starting on its node and port; the other tenant's
	// service reads as absent.
	b.open("#/services", "services")
	svcRow := `[data-row="` + chat.ID + `"]`
	b.until("acme's service", `document.querySelector('`+svcRow+`') !== null`)
	if got := b.text(svcRow); !strings.Contains(got, "/serve/acme/chat/") || !strings.Contains(got, "1..2") || !strings.Contains(got, "running") {
		t.Errorf("service row: %q, want its endpoint, bounds 1..2 and state", got)
	}
	isolated("services")
	b.shot("03a-tenant-services")
	b.open("#/services/"+chat.ID, "services")
	b.until("its replica starting", `(() => { const r = document.querySelector('[data-row="0"]'); return r !== null && r.innerText.includes('starting') && r.innerText.includes('h200-a'); })()`)
	if got := b.text("#view"); !strings.Contains(got, "gpufleet, on requests in flight") || !strings.Contains(got, "scaled") {
		t.Errorf("the service's page lacks its policy or its scaling event:\n%s", got)
	}
	isolated("a service")
	b.shot("03b-tenant-service")
	// Its bounds from the page: a floor of 2 starts a second replica; a
	// ceiling below the floor is refused naming the field.
	b.step("floor 2", chromedp.SetValue(chromedp.CSS(`[data-key="bounds-min"]`), "2"), chromedp.Click(chromedp.CSS(`[data-key="bounds-set"]`)))
	b.until("the new bounds", `document.querySelector('.bounds-result').innerText.includes('Bounds set to 2..2')`)
	b.until("a second replica", `document.querySelector('[data-row="1"]') !== null`)
	b.step("ceiling 1", chromedp.SetValue(chromedp.CSS(`[data-key="bounds-max"]`), "1"), chromedp.Click(chromedp.CSS(`[data-key="bounds-set"]`)))
	b.until("the refusal", `document.querySelector('.bounds-result').innerText.includes('minReplicas')`)
	if got := b.text(".bounds-result"); !strings.Contains(got, "minReplicas: 2: want at most maxReplicas (1)") {
		t.Errorf("refusal of min 2 > max 1: %q", got)
	}
	b.shot("03c-tenant-service-bounds")
	b.open("#/services/"+globexChat.ID, "services")
	b.until("the other tenant's service as absent", `document.getElementById('view').innerText.includes('No such service')`)
	isolated("the other tenant's service")

	b.open("#/jobs", "jobs")
	b.until("the job list", `document.querySelector('[data-row="`+waiter.ID+`"]') !== null && document.querySelector('[data-row="`+xss.ID+`"]') !== null`)
	isolated("jobs")
	b.shot("04-tenant-jobs")

	// The pending list: position, reason and earliest start.
	b.open("#/jobs?state=pending", "jobs")
	row := `document.querySelector('[data-row="` + waiter.ID + `"]')`
	b.until("the waiting job's row", row+` !== null`)
	got := b.text(`[data-row="` + waiter.ID + `"]`)
	for _, want := range []string{"#1", "acme-train", "no-capacity", "needs", "h100"} {
		if !strings.Contains(got, want) {
			t.Errorf("pending row: %q lacks %q", got, want)
		}
	}
	if n := eval[int](b, row+`.querySelectorAll('time').length`); n != 1 {
		t.Errorf("pending row %q: want its earliest start as a time", got)
	}
	isolated("pending jobs")
	b.shot("05-tenant-pending")

	// User data stays text: the command and the output show as written,
	// and nothing in them ran.
	b.open("#/job/"+xss.ID, "job")
	b.until("the end of the log", `document.querySelector('.log-status').textContent.includes('End of output')`)
	if out := b.text(".log"); !strings.Contains(out, "<img src=x onerror=window.__xss=1><script>window.__xss=2</script>") {
		t.Errorf("log panel: %q, want the output as text", out)
	}
	if cmd := b.text(".cmd"); !strings.Contains(cmd, "<b>bold</b>") {
		t.Errorf("command: %q, want it as text", cmd)
	}
	if ran := eval[bool](b, `window.__xss !== undefined || document.querySelector('#view img, #view script, #view b') !== null`); ran {
		t.Errorf("markup in user data became elements or ran")
	}
	isolated("a job")
	b.shot("06-tenant-job-done")

	// The editor: strict validation with the line and the field path.
	b.open("#/submit", "submit")
	isolated("submit")
	b.step("bad document", chromedp.SetValue(chromedp.CSS("textarea"), badJob), chromedp.Click(chromedp.CSS(`.submit-form button[type="submit"]`)))
	b.until("the problems", `document.querySelector('.problems li') !== null`)
	if msg := b.text(".result"); !strings.Contains(msg, "Line 7, column") || !strings.Contains(msg, "gangs[0].count") {
		t.Errorf("refusal: %q, want the line and the field path", msg)
	}
	b.shot("07-tenant-submit-error")

	// Submit a job that waits for a node the blocker holds.
	blocker := p.submit("acme", blockerJob)
	p.waitState(blocker.ID, "running")
	before := b.shown()
	b.step("good document", chromedp.SetValue(chromedp.CSS("textarea"), watchJob), chromedp.Click(chromedp.CSS(`.submit-form button[type="submit"]`)))
	b.until("the new job's page", fmt.Sprintf(`document.getElementById('view').dataset.ready === 'job' && Number(document.getElementById('view').dataset.shown) > %d`, before))
	id := eval[string](b, `decodeURIComponent(location.hash.slice('#/job/'.length))`)
	if !strings.HasPrefix(id, "watch-") {
		t.Fatalf("after submitting: at %q, want the page of job watch-N", id)
	}
	b.until("the pending state", `document.querySelector('.state').innerText.includes('pending')`)
	wait := b.text("#view")
	for _, want := range []string{"in queue acme-train", "Why it waits:", "needs", "Earliest start:"} {
		if !strings.Contains(wait, want) {
			t.Errorf("the waiting job's page lacks %q:\n%s", want, wait)
		}
	}
	if n := eval[int](b, `[...document.querySelectorAll('#view p')].filter((p) => p.textContent.startsWith('Earliest start:') && p.querySelector('time')).length`); n != 1 {
		t.Errorf("the waiting job's page shows no earliest start time:\n%s", wait)
	}
	b.shot("08-tenant-job-pending")

	// No reload: the stream brings the start and the output.
	b.until("the running state", `document.querySelector('.state').innerText.includes('running')`)
	b.until("streamed output", `document.querySelector('.log').textContent.includes('line 3')`)
	if tl := b.text(".timeline"); !strings.Contains(tl, "admitted") || !strings.Contains(tl, "attempt 1") {
		t.Errorf("the timeline lacks the admission:\n%s", b.text("#view"))
	}
	isolated("the running job")
	b.shot("09-tenant-job-running")

	// Cancel it from the page.
	b.step("cancel", chromedp.Click(chromedp.CSS(`[data-key="cancel"]`)))
	b.until("the confirmation", `document.querySelector('[data-key="cancel-yes"]') !== null`)
	b.shot("10-tenant-cancel-confirm")
	b.step("confirm", chromedp.Click(chromedp.CSS(`[data-key="cancel-yes"]`)))
	b.until("the cancelled state", `document.querySelector('.state').innerText.includes('cancelled')`)
	b.until("the end of the log", `document.querySelector('.log-status').textContent.includes('End of output')`)
	p.waitState(id, "cancelled")
	b.shot("11-tenant-job-cancelled")

	// Usage: the tenant's own rows (the blocker and the watched job ran),
	// its standing and grants, nothing of another tenant's.
	// acme is postpaid until it is granted credits: then its credits left
	// are drawn over the month.
	b.open("#/usage", "usage")
	b.until("acme's usage", `document.getElementById('view').innerText.includes('acme-train') && document.getElementById('view').innerText.includes('Standing now')`)
	if txt := b.text("#view"); !strings.Contains(txt, "postpaid") || !strings.Contains(txt, "Total:") || !strings.Contains(txt, "No prepaid tenant") {
		t.Errorf("usage view:\n%s\nwant acme's rows, its total and its standing (postpaid)", txt)
	}
	if _, err := p.admin.Grant(context.Background(), api.CreateGrant{Tenant: "acme", Amount: "500"}); err != nil {
		t.Fatal(err)
	}
	b.open("#/fleet", "fleet")
	b.open("#/usage", "usage")
	b.until("acme's credit burn-down", `[...document.querySelectorAll('#view figure.chart')].some((f) => f.innerText.includes('Credits left over the month') && f.querySelector('path'))`)
	isolated("usage")
	b.shot("11b-tenant-usage")

	// The keyboard: Tab from the top of the page reaches the navigation,
	// and Enter opens a view.
	b.open("#/fleet", "fleet")
	eval[bool](b, `(document.activeElement && document.activeElement.blur(), true)`)
	reached := false
	for range 8 {
		b.step("tab", chromedp.KeyEvent("\t"))
		if eval[bool](b, `document.activeElement && document.activeElement.getAttribute('href') === '#/jobs'`) {
			reached = true
			break
		}
	}
	if !reached {
		t.Fatalf("Tab did not reach the Jobs link; focus on %s", eval[string](b, `document.activeElement ? document.activeElement.outerHTML : ''`))
	}
	before = b.shown()
	b.step("enter", chromedp.KeyEvent("\r"))
	b.until("the jobs view by keyboard", fmt.Sprintf(`document.getElementById('view').dataset.ready === 'jobs' && Number(document.getElementById('view').dataset.shown) > %d`, before))
	if focus := eval[string](b, `document.activeElement.tagName`); focus != "H1" {
		t.Errorf("after opening a view the focus is on %s, want its title", focus)
	}

	// The admin sees everything.
	b.signOut()
	b.signIn(p.s.AdminToken(), "jobs")
	b.open("#/fleet", "fleet")
	b.until("the charts and allocations", `document.querySelectorAll('.chart-svg').length === 2 && document.querySelectorAll('.cell-used').length >= 4`)
	if got := b.text(".cards"); !strings.Contains(got, "Utilization") || !strings.Contains(got, "Fragmentation") {
		t.Errorf("admin fleet cards: %q", got)
	}
	b.shot("12-admin-fleet")
	b.open("#/queues", "queues")
	b.until("both tenants", `document.getElementById('view').innerText.includes('globex-batch') && document.getElementById('view').innerText.includes('acme-train')`)
	b.shot("13-admin-queues")
	// The sites view: the zone's cap an administrator set, its draw.
	if _, err := p.admin.SetSiteCap(context.Background(), "eu/eu-1", "50"); err != nil {
		t.Fatal(err)
	}
	b.open("#/sites", "sites")
	b.until("the zone's cap and draw", `document.querySelector('[data-row="eu/eu-1"]') !== null && document.querySelector('[data-row="eu/eu-1"]').innerText.includes('50.0 (admin)')`)
	if bad := b.unlabelled(); len(bad) > 0 {
		t.Errorf("sites: controls without a name: %v", bad)
	}
	b.shot("13b-admin-sites")
	b.open("#/jobs", "jobs")
	b.until("every tenant's jobs", `document.querySelector('[data-row="`+secret.ID+`"]') !== null && document.querySelector('[data-row="`+waiter.ID+`"]') !== null`)
	b.shot("14-admin-jobs")
	b.open("#/jobs?tenant=globex", "jobs")
	b.until("globex's jobs only", `document.querySelector('[data-row="`+secret.ID+`"]') !== null && document.querySelector('[data-row="`+waiter.ID+`"]') === null`)
	b.open("#/job/"+secret.ID, "job")
	b.until("the other tenant's output", `document.querySelector('.log').textContent.includes('globex private output')`)
	b.shot("15-admin-job-running")
	b.open("#/services", "services")
	b.until("every tenant's services", `document.querySelector('[data-row="`+chat.ID+`"]') !== null && document.querySelector('[data-row="`+globexChat.ID+`"]') !== null`)
	if got := b.text(`[data-row="` + globexChat.ID + `"]`); !strings.Contains(got, "globex") || !strings.Contains(got, "0..2") {
		t.Errorf("admin's row of globex's service: %q", got)
	}
	b.shot("15a-admin-services")
	b.open("#/submit", "submit")
	b.shot("16-admin-submit")
	if bad := b.unlabelled(); len(bad) > 0 {
		t.Errorf("admin submit: controls without a name: %v", bad)
	}
	if probs := b.problems(); len(probs) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(probs, "\n"))
	}
}

package web_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser is one headless Chromium tab.
type browser struct {
	t    testing.TB
	ctx  context.Context
	dir  string
	mu   sync.Mutex
	logs []chromedp.ConsoleMessage
}

// newBrowser starts Chromium, or skips the test when there is none.
func newBrowser(t testing.TB, width, height int) *browser {
	t.Helper()
	path := chromium()
	if path == "" {
		t.Skip("no Chromium found (install Debian's chromium, or set GPUFLEET_CHROMIUM): the dashboard's browser tests need one")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(width, height))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, dir: shotDir(t)}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.logs = append(b.logs, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// step runs actions with a bound on how long they may take.
func (b *browser) step(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression whose value is JSON.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// until waits for a JavaScript condition to hold.
func (b *browser) until(what, cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		loaded, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`performance.getEntriesByType('resource').map((r) => r.name + ' ' + Math.round(r.duration)).join('\n')`))
		b.t.Fatalf("waiting for %s (%s): %v\npage text:\n%s\nrequests done:\n%s", what, cond, err, text, loaded)
	}
}

// shown is how many views the page has drawn.
func (b *browser) shown() int {
	return eval[int](b, `Number(document.getElementById('view').dataset.shown || 0)`)
}

// open goes to a view by its fragment and waits until it is drawn with
// its data.
func (b *browser) open(hash, view string) {
	b.t.Helper()
	before := b.shown()
	// The same fragment again fires no hashchange: one is sent.
	eval[bool](b, fmt.Sprintf(`(location.hash === %[1]q ? window.dispatchEvent(new HashChangeEvent('hashchange')) : (location.hash = %[1]q), true)`, hash))
	b.until("view "+view, fmt.Sprintf(`(() => { const v = document.getElementById('view'); return v.dataset.ready === %q && Number(v.dataset.shown) > %d; })()`, view, before))
}

// text is the visible text of the element the selector finds.
func (b *browser) text(sel string) string {
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {innerText: ''}).innerText`, sel))
}

// markup is what the view holds: its text and every attribute.
func (b *browser) markup() string {
	return eval[string](b, `document.getElementById('view').outerHTML + document.getElementById('who').outerHTML`)
}

func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// unlabelled lists the view's controls without an accessible name.
func (b *browser) unlabelled() []string {
	return eval[[]string](b, `(() => {
		const out = [];
		for (const el of document.querySelectorAll('input, select, textarea, button, a[href]')) {
			if (el.closest('[hidden]') || el.type === 'hidden') continue;
			let name = el.getAttribute('aria-label') || '';
			if (!name && el.getAttribute('aria-labelledby')) name = el.getAttribute('aria-labelledby').split(' ').map((id) => (document.getElementById(id) || {}).textContent || '').join(' ');
			if (!name && el.labels && el.labels.length) name = [...el.labels].map((l) => l.textContent).join(' ');
			if (!name && (el.tagName === 'BUTTON' || el.tagName === 'A')) name = el.textContent;
			if (!name.trim()) out.push(el.outerHTML.slice(0, 120));
		}
		return out;
	})()`)
}

// problems lists uncaught exceptions and policy violations the page
// reported (a refused request is logged too, and is not one).
func (b *browser) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.logs {
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") || m.Source == "security" {
			out = append(out, m.String())
		}
	}
	return out
}

func (b *browser) signIn(token, view string) {
	b.t.Helper()
	b.until("the sign-in form", `!document.getElementById('signin').hidden`)
	before := b.shown()
	b.step("sign in", chromedp.SetValue(chromedp.CSS("#token"), token), chromedp.Click(chromedp.CSS(`#signin-form button[type="submit"]`)))
	b.until("the first view", fmt.Sprintf(`(() => { const v = document.getElementById('view'); return v.dataset.ready === %q && Number(v.dataset.shown) > %d; })()`, view, before))
}

func (b *browser) signOut() {
	b.t.Helper()
	b.step("sign out", chromedp.Click(chromedp.CSS("#signout")))
	b.until("the sign-in form", `!document.getElementById('signin').hidden`)
}

package web

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func serve(t *testing.T, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, req)
	return rec
}

func TestHandlerServesThePageAndItsFilesUnderThePolicy(t *testing.T) {
	for target, want := range map[string]struct {
		status int
		ctype  string
	}{
		"/":                        {200, "text/html; charset=utf-8"},
		"/ui/app.css":              {200, "text/css; charset=utf-8"},
		"/ui/js/main.js":           {200, "text/javascript; charset=utf-8"},
		"/ui/js/views/job.js":      {200, "text/javascript; charset=utf-8"},
		"/ui/nosuch.js":            {404, "text/plain; charset=utf-8"},
		"/ui/index.html":           {404, "text/plain; charset=utf-8"},
		"/ui/../web.go":            {404, "text/plain; charset=utf-8"},
		"/elsewhere":               {404, "text/plain; charset=utf-8"},
		"/ui/js/main.js?cachebust": {200, "text/javascript; charset=utf-8"},
	} {
		rec := serve(t, "GET", target, nil)
		got := struct {
			status int
			ctype  string
		}{rec.Code, rec.Header().Get("Content-Type")}
		if got != want {
			t.Errorf("GET %s: %+v, want %+v", target, got, want)
		}
		if rec.Code == 200 || strings.HasPrefix(target, "/ui/") {
			h := rec.Header()
			for k, v := range map[string]string{"Content-Security-Policy": ContentSecurityPolicy, "X-Content-Type-Options": "nosniff",
				"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
				if h.Get(k) != v {
					t.Errorf("GET %s: %s %q, want %q", target, k, h.Get(k), v)
				}
			}
		}
	}
	first := serve(t, "GET", "/ui/js/main.js", nil)
	etag := first.Header().Get("ETag")
	if etag == "" || first.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("no ETag or no revalidation: %v", first.Header())
	}
	if again := serve(t, "GET", "/ui/js/main.js", map[string]string{"If-None-Match": etag}); again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Errorf("revalidation: %d with %d bytes, want 304 and none", again.Code, again.Body.Len())
	}
	if head := serve(t, "HEAD", "/", nil); head.Code != 200 || head.Body.Len() != 0 {
		t.Errorf("HEAD /: %d with %d bytes", head.Code, head.Body.Len())
	}
}

// files lists the embedded files with a suffix.
func files(t *testing.T, suffix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, suffix) {
			return err
		}
		data, err := fs.ReadFile(static, p)
		out[strings.TrimPrefix(p, "static/")] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestScriptsNeverTurnDataIntoMarkup: no script parses strings as HTML or
// code, and the page has no inline script, style or handler, which the
// policy would refuse anyway.
func TestScriptsNeverTurnDataIntoMarkup(t *testing.T) {
	banned := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\(['"](style|on)|DOMParser|createContextualFragment|srcdoc`)
	scripts := files(t, ".js")
	if len(scripts) < 5 {
		t.Fatalf("only %d scripts embedded", len(scripts))
	}
	for name, src := range scripts {
		for i, line := range strings.Split(src, "\n") {
			if m := banned.FindString(line); m != "" && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				t.Errorf("%s:%d: %s: %s", name, i+1, m, strings.TrimSpace(line))
			}
		}
	}
	page := files(t, ".html")["index.html"]
	for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, ` src="/ui/`) {
			t.Errorf("index.html holds an inline script: %s", tag)
		}
	}
	for _, bad := range []*regexp.Regexp{regexp.MustCompile(`\sstyle=`), regexp.MustCompile(`\son[a-z]+=`), regexp.MustCompile(`<style`)} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("index.html holds inline code or style: %s", m)
		}
	}
}

// TestEveryModuleIsThereAndPreloaded: each relative import names an
// embedded file, and the page preloads every module main.js pulls in, so
// that they load at once rather than one after the other.
func TestEveryModuleIsThereAndPreloaded(t *testing.T) {
	scripts := files(t, ".js")
	imp := regexp.MustCompile(`(?m)^import .* from '(\.[^']+)';$`)
	for name, src := range scripts {
		for _, m := range imp.FindAllStringSubmatch(src, -1) {
			target := path.Join(path.Dir(name), m[1])
			if _, ok := scripts[target]; !ok {
				t.Errorf("%s imports %s, which is not embedded", name, target)
			}
		}
	}
	page := files(t, ".html")["index.html"]
	pre := regexp.MustCompile(`<link rel="modulepreload" href="/ui/([^"]+)">`)
	var preloaded, want []string
	for _, m := range pre.FindAllStringSubmatch(page, -1) {
		preloaded = append(preloaded, m[1])
	}
	for name := range scripts {
		if name != "js/main.js" {
			want = append(want, name)
		}
	}
	slices.Sort(preloaded)
	slices.Sort(want)
	if diff := cmp.Diff(want, preloaded); diff != "" {
		t.Errorf("modules index.html preloads (-want +got):\n%s", diff)
	}
}

// Package web is gpufleet's dashboard: plain HTML, CSS and JavaScript
// modules, embedded in the binary and served by the server at /, with no
// build step. The pages call the REST API with the token a person signs in
// with (kept in the tab's session storage and sent as a bearer header, so
// the browser never attaches it on its own) and follow the server's event
// stream for live updates. The handler sets a strict Content-Security-Policy:
// scripts and styles come from the server's own files only, and the pages
// build their DOM from text nodes, never from markup.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is the policy of every page and asset: nothing but
// the server's own scripts, styles and API; no inline script or style, no
// plugins, no framing, no form posting elsewhere.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// AssetPrefix is where the assets are served.
const AssetPrefix = "/ui/"

type asset struct {
	body  []byte
	etag  string
	ctype string
}

// Handler serves the dashboard: / is its page, /ui/... its assets.
func Handler() http.Handler {
	assets := map[string]asset{}
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	err = fs.WalkDir(root, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".js":
			ctype = "text/javascript; charset=utf-8"
		case ".css":
			ctype = "text/css; charset=utf-8"
		case ".html":
			ctype = "text/html; charset=utf-8"
		}
		assets[p] = asset{body: body, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, ctype: ctype}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		SecurityHeaders(h)
		name := "index.html"
		if r.URL.Path != "/" {
			// The page is served at / only, so that it has one address.
			rest, ok := strings.CutPrefix(r.URL.Path, AssetPrefix)
			if !ok || rest == "index.html" {
				rest = ""
			}
			name = rest
		}
		a, ok := assets[name]
		if !ok {
			http.Error(w, "no such file", http.StatusNotFound)
			return
		}
		h.Set("Content-Type", a.ctype)
		// Revalidated on every load (cheap: 304 by ETag), so a new
		// binary's files are never mixed with an old one's.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(a.body)
	})
}

// SecurityHeaders sets the headers every dashboard response carries.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

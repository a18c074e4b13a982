package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/gpufleet/gpufleet/internal/api"
)

var (
	docOnce   sync.Once
	docRouter routers.Router
	docErr    error
)

// openAPIRouter loads and validates the embedded document once.
func openAPIRouter(t testing.TB) routers.Router {
	docOnce.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
		if err != nil {
			docErr = err
			return
		}
		if docErr = doc.Validate(context.Background()); docErr != nil {
			return
		}
		doc.Servers = nil // match requests to any test server
		docRouter, docErr = legacy.NewRouter(doc)
	})
	if docErr != nil {
		t.Fatalf("openapi document: %v", docErr)
	}
	return docRouter
}

func TestOpenAPIDocumentIsValidAndCoversEveryRoute(t *testing.T) {
	router := openAPIRouter(t)
	docs, err := os.ReadFile(filepath.Join("..", "..", "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(docs, api.OpenAPI) {
		t.Errorf("docs/openapi.yaml differs from internal/api/openapi.yaml (served at /v1/openapi.yaml); copy one over the other")
	}
	for _, r := range Routes() {
		method, path, _ := strings.Cut(r, " ")
		req, _ := http.NewRequest(method, "http://server"+strings.ReplaceAll(path, "{id}", "train-1"), nil)
		route, _, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("route %s is not in the OpenAPI document: %v", r, err)
			continue
		}
		if route.Path != path {
			t.Errorf("route %s matched document path %s", r, route.Path)
		}
	}
}

// checked is a transport that validates every response against the
// OpenAPI document.
type checked struct {
	t    testing.TB
	next http.RoundTripper
}

func (c checked) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return resp, err
	}
	// A path parameter may hold an escaped "/" (a site's path: us%2Fz1),
	// one segment to the server's mux: match it as the mux does.
	find := req
	if req.URL.RawPath != "" {
		find = req.Clone(req.Context())
		find.URL.Path, find.URL.RawPath = req.URL.RawPath, ""
	}
	route, params, err := openAPIRouter(c.t).FindRoute(find)
	if err != nil {
		c.t.Errorf("%s %s: no route in the OpenAPI document: %v", req.Method, req.URL.Path, err)
		return resp, nil
	}
	vreq := req.Clone(req.Context())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		c.t.Errorf("%s %s -> %d does not match the OpenAPI document: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
	return resp, nil
}

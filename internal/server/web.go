package server

import (
	"net/http"

	"github.com/gpufleet/gpufleet/internal/api"
	"github.com/gpufleet/gpufleet/internal/web"
)

// mountWeb serves the dashboard at / and its assets under /ui/. They carry
// no data: everything the pages show comes from the API with the token
// the person signs in with.
func (s *Server) mountWeb(mux *http.ServeMux) {
	h := web.Handler()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET "+web.AssetPrefix, h)
}

// whoami is GET /v1/whoami: the role and tenant of the token.
func (s *Server) whoami(w http.ResponseWriter, r *http.Request, p principal) {
	writeJSON(w, http.StatusOK, api.Whoami{Role: p.role, Tenant: p.tenant})
}

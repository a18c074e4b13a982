package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// The gateway: every service's requests go to the server (its API listener,
// or a listener of the gateway's own) at ServePrefix + TENANT/SERVICE/, the
// rest of the path and the query passed on to one of the service's ready
// replicas. A request carries its tenant's token, an admin's, or one of the
// service's own API keys, as "Authorization: Bearer KEY" (what OpenAI's
// clients send); the gateway drops the header before passing the request
// on.
const ServePrefix = "/serve/"

// HeaderPromptTokens is the response header a replica sets to the prompt
// tokens of the request it answers; a service whose replicas set it is
// scaled on tokens a second (target.tokensPerSecond) rather than on
// requests in flight alone.
const HeaderPromptTokens = "Gpufleet-Prompt-Tokens"

// HeaderReplica names, on every response the gateway passes on, the
// service replica that served it.
const HeaderReplica = "Gpufleet-Replica"

// Service is an inference service as the API shows it: what it is, what its
// autoscaler wants and what its replicas are doing.
type Service struct {
	ID     string `json:"id" yaml:"id"`
	Name   string `json:"name" yaml:"name"`
	Tenant string `json:"tenant" yaml:"tenant"`
	Queue  string `json:"queue" yaml:"queue"`
	State  string `json:"state" yaml:"state"`
	Reason string `json:"reason,omitempty" yaml:"reason,omitempty"`
	// Endpoint is the path of its requests on the server (or on the
	// gateway's own listener): ServePrefix + tenant/name/.
	Endpoint    string    `json:"endpoint" yaml:"endpoint"`
	Policy      string    `json:"policy" yaml:"policy"`
	MinReplicas int       `json:"minReplicas" yaml:"minReplicas"`
	MaxReplicas int       `json:"maxReplicas" yaml:"maxReplicas"`
	Submitted   time.Time `json:"submitted" yaml:"submitted"`
	// Desired is what the autoscaler asks for; Mode why (stable, panic,
	// hold, idle, fixed).
	Desired  int    `json:"desired" yaml:"desired"`
	Mode     string `json:"mode,omitempty" yaml:"mode,omitempty"`
	Ready    int    `json:"ready" yaml:"ready"`
	Starting int    `json:"starting" yaml:"starting"`
	Waiting  int    `json:"waiting" yaml:"waiting"`
	Draining int    `json:"draining" yaml:"draining"`
	Stopping int    `json:"stopping" yaml:"stopping"`
	// InFlight and Queued are the gateway's requests on replicas and held
	// now; RequestRate the requests a second over the last minute.
	InFlight    int     `json:"inFlight" yaml:"inFlight"`
	Queued      int     `json:"queued" yaml:"queued"`
	RequestRate float64 `json:"requestRate" yaml:"requestRate"`
	// Tokens says whether the service is scaled on prompt tokens (its
	// replicas report them) rather than on requests in flight.
	Tokens bool `json:"tokens" yaml:"tokens"`
	// ColdStartSeconds is the cold start the autoscaler reckons with (the
	// 90th percentile of the measured ones, or the spec's); ColdStarts
	// the last measured, oldest first.
	ColdStartSeconds float64   `json:"coldStartSeconds,omitempty" yaml:"coldStartSeconds,omitempty"`
	ColdStarts       []float64 `json:"coldStarts,omitempty" yaml:"coldStarts,omitempty"`
	// Replicas are the replicas that are not over; Events the latest of
	// the service's history (scaling, readiness, replacements).
	Replicas []ServiceReplica `json:"replicas" yaml:"replicas"`
	Events   []ServiceEvent   `json:"events,omitempty" yaml:"events,omitempty"`
	Keys     []ServiceKeyInfo `json:"keys,omitempty" yaml:"keys,omitempty"`
}

// ServiceReplica is one replica of a service.
type ServiceReplica struct {
	Replica int `json:"replica" yaml:"replica"`
	Attempt int `json:"attempt" yaml:"attempt"`
	// Phase is waiting (for a place), starting, ready, draining or
	// stopping.
	Phase    string    `json:"phase" yaml:"phase"`
	Node     string    `json:"node,omitempty" yaml:"node,omitempty"`
	Port     int       `json:"port,omitempty" yaml:"port,omitempty"`
	Placed   time.Time `json:"placed,omitzero" yaml:"placed,omitempty"`
	ReadyAt  time.Time `json:"readyAt,omitzero" yaml:"readyAt,omitempty"`
	InFlight int       `json:"inFlight" yaml:"inFlight"`
	Reason   string    `json:"reason,omitempty" yaml:"reason,omitempty"`
}

// ServiceEvent is one entry of a service's history.
type ServiceEvent struct {
	Time   time.Time `json:"time" yaml:"time"`
	Kind   string    `json:"kind" yaml:"kind"`
	Detail string    `json:"detail,omitempty" yaml:"detail,omitempty"`
}

// ServiceList is the answer to GET /v1/services: the services that are not
// over, in submission order.
type ServiceList struct {
	Services []Service `json:"services" yaml:"services"`
}

// ServiceKeyInfo is a service API key without its secret.
type ServiceKeyInfo struct {
	ID      string    `json:"id" yaml:"id"`
	Created time.Time `json:"created" yaml:"created"`
}

// ServiceKey is a new service API key; the secret is shown this once.
type ServiceKey struct {
	Key     string    `json:"key" yaml:"key"`
	ID      string    `json:"id" yaml:"id"`
	Service string    `json:"service" yaml:"service"`
	Created time.Time `json:"created" yaml:"created"`
}

// Services lists the services the token may see.
func (c *Client) Services(ctx context.Context) ([]Service, error) {
	var out ServiceList
	err := c.get(ctx, "/v1/services", &out)
	return out.Services, err
}

// Service reads one service by ID, or by name within the token's tenant.
func (c *Client) Service(ctx context.Context, idOrName string) (Service, error) {
	var out Service
	err := c.get(ctx, "/v1/services/"+url.PathEscape(idOrName), &out)
	return out, err
}

// CreateServiceKey makes an API key that reaches one service's endpoint.
func (c *Client) CreateServiceKey(ctx context.Context, idOrName string) (ServiceKey, error) {
	var out ServiceKey
	err := c.postJSON(ctx, "/v1/services/"+url.PathEscape(idOrName)+"/keys", struct{}{}, &out)
	return out, err
}

// RevokeServiceKey removes a service API key.
func (c *Client) RevokeServiceKey(ctx context.Context, idOrName, keyID string) error {
	return c.send(ctx, "DELETE", "/v1/services/"+url.PathEscape(idOrName)+"/keys/"+url.PathEscape(keyID), nil, nil)
}

// MaxServiceReplicas bounds a service's maxReplicas (the spec's limit).
const MaxServiceReplicas = 10_000

// ScaleService changes a live service's replica bounds; a bound left out
// keeps its value. A floor above the service's count grows it at once, a
// ceiling below shrinks it (drained, never a request dropped).
type ScaleService struct {
	MinReplicas *int `json:"minReplicas,omitempty" yaml:"minReplicas,omitempty"`
	MaxReplicas *int `json:"maxReplicas,omitempty" yaml:"maxReplicas,omitempty"`
}

// DecodeScaleService reads and checks a change of a service's bounds; the
// server checks them together with the bounds it keeps.
func DecodeScaleService(data []byte) (ScaleService, *Error) {
	var s ScaleService
	if err := decodeStrict(data, &s); err != nil {
		return s, err
	}
	switch {
	case s.MinReplicas == nil && s.MaxReplicas == nil:
		return s, Invalid("", "nothing to change: give minReplicas or maxReplicas")
	case s.MinReplicas != nil && (*s.MinReplicas < 0 || *s.MinReplicas > MaxServiceReplicas):
		return s, Invalid("minReplicas", "%d: want 0 to %d", *s.MinReplicas, MaxServiceReplicas)
	case s.MaxReplicas != nil && (*s.MaxReplicas < 1 || *s.MaxReplicas > MaxServiceReplicas):
		return s, Invalid("maxReplicas", "%d: want 1 to %d", *s.MaxReplicas, MaxServiceReplicas)
	case s.MinReplicas != nil && s.MaxReplicas != nil && *s.MinReplicas > *s.MaxReplicas:
		return s, Invalid("minReplicas", "%d: want at most maxReplicas (%d)", *s.MinReplicas, *s.MaxReplicas)
	}
	return s, nil
}

// ScaleService changes a live service's replica bounds.
func (c *Client) ScaleService(ctx context.Context, idOrName string, s ScaleService) (Service, error) {
	var out Service
	err := c.send(ctx, http.MethodPatch, "/v1/services/"+url.PathEscape(idOrName), s, &out)
	return out, err
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/gpufleet/gpufleet/internal/api"
)

func init() { addCommand(newDemoReplicaCmd) }

// demoReplica is a stand-in for a model server: what a service's replica
// does, without a model.
type demoReplica struct {
	name         string
	readyPath    string
	startDelay   time.Duration
	tokenDelay   time.Duration
	tokens       int
	prefillTPS   float64
	readyAt      time.Time
	served       atomic.Int64
	inFlight     atomic.Int64
	stdout       io.Writer
	shuttingDown atomic.Bool
}

func newDemoReplicaCmd() *cobra.Command {
	d := &demoReplica{}
	var port int
	c := &cobra.Command{
		Use:   "demo-replica",
		Short: "Serve a fake language model over HTTP: a service replica for demos and tests",
		Long: `Demo-replica is a stand-in for a model server such as vLLM, for trying
services without accelerators or weights. It listens on $PORT (the port
the node agent gives each service replica) and answers, after an optional
start delay that stands for loading a model:

  GET  READY-PATH              503 while "loading", then 200
  POST /v1/completions         OpenAI-style completion of fake tokens;
  POST /v1/chat/completions    "stream": true sends them as server-sent
                               events, one every --token-delay
  GET  /v1/models              the one model
  GET  /                       which replica answered

Every completion's answer carries the Gpufleet-Prompt-Tokens header (a
quarter of the prompt's bytes, the usual rule of thumb), which the
gateway's autoscaler scales on. On SIGTERM it stops taking requests and
exits once those in flight are answered.`,
		Example: `  gpufleet demo-replica --start-delay 20s --token-delay 30ms
  curl -N localhost:8000/v1/completions -d '{"prompt": "hello", "max_tokens": 5, "stream": true}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("port") {
				if v := os.Getenv("PORT"); v != "" {
					p, err := strconv.Atoi(v)
					if err != nil || p < 1 || p > 65535 {
						return fmt.Errorf("$PORT %q: want a port of 1..65535", v)
					}
					port = p
				}
			}
			if d.name == "" {
				d.name = os.Getenv("GPUFLEET_SERVICE") + "/" + os.Getenv("GPUFLEET_SERVICE_REPLICA")
				if d.name == "/" {
					d.name, _ = os.Hostname()
				}
			}
			if !strings.HasPrefix(d.readyPath, "/") {
				return fmt.Errorf("--ready-path %q: want an absolute path such as /health", d.readyPath)
			}
			if d.tokens < 1 || d.tokenDelay < 0 || d.startDelay < 0 || d.prefillTPS < 0 {
				return fmt.Errorf("--tokens must be at least 1; --token-delay, --start-delay and --prefill-tokens-per-second must not be negative")
			}
			d.stdout = cmd.OutOrStdout()
			ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("listen on port %d: %w", port, err)
			}
			d.readyAt = time.Now().Add(d.startDelay)
			fmt.Fprintf(d.stdout, "demo replica %s listening on %s; ready at %s (in %s)\n", d.name, ln.Addr(), d.readyAt.Format(time.TimeOnly), d.startDelay)
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return d.serve(ctx, ln)
		},
	}
	f := c.Flags()
	f.IntVar(&port, "port", 8000, "`PORT` to listen on (default: $PORT, else 8000)")
	f.StringVar(&d.readyPath, "ready-path", "/health", "readiness `PATH`")
	f.DurationVar(&d.startDelay, "start-delay", 0, "how long \"loading the model\" takes: the readiness path answers 503 until then")
	f.DurationVar(&d.tokenDelay, "token-delay", 20*time.Millisecond, "time between two generated tokens")
	f.IntVar(&d.tokens, "tokens", 16, "tokens a completion generates unless the request's max_tokens says otherwise")
	f.Float64Var(&d.prefillTPS, "prefill-tokens-per-second", 0, "prompt tokens processed a second before the first token (0: no prefill time)")
	f.StringVar(&d.name, "name", "", "name it answers with (default: $GPUFLEET_SERVICE/$GPUFLEET_SERVICE_REPLICA)")
	return c
}

func (d *demoReplica) serve(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+d.readyPath, d.health)
	mux.HandleFunc("POST /v1/completions", d.complete)
	mux.HandleFunc("POST /v1/chat/completions", d.complete)
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"id":"demo","object":"model","owned_by":"gpufleet"}]}`+"\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if !d.loaded() {
			http.Error(w, "loading the model", http.StatusServiceUnavailable)
			return
		}
		d.served.Add(1)
		fmt.Fprintf(w, "demo replica %s: %s %s\n", d.name, r.Method, r.URL.RequestURI())
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.NewTextHandler(io.Discard, nil), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	d.shuttingDown.Store(true)
	fmt.Fprintf(d.stdout, "demo replica %s stopping: %d requests in flight, %d served\n", d.name, d.inFlight.Load(), d.served.Load())
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err := hs.Shutdown(sctx)
	fmt.Fprintf(d.stdout, "demo replica %s stopped after %d requests\n", d.name, d.served.Load())
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (d *demoReplica) loaded() bool { return !time.Now().Before(d.readyAt) }

func (d *demoReplica) health(w http.ResponseWriter, r *http.Request) {
	if !d.loaded() {
		http.Error(w, fmt.Sprintf("loading the model; ready in %s", time.Until(d.readyAt).Round(time.Millisecond)), http.StatusServiceUnavailable)
		return
	}
	if d.shuttingDown.Load() {
		http.Error(w, "stopping", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// completionRequest is what demo-replica reads of an OpenAI-style request.
type completionRequest struct {
	Prompt   any `json:"prompt"`
	Messages []struct {
		Content any `json:"content"`
	} `json:"messages"`
	MaxTokens int  `json:"max_tokens"`
	Stream    bool `json:"stream"`
}

func (d *demoReplica) complete(w http.ResponseWriter, r *http.Request) {
	if !d.loaded() {
		http.Error(w, "loading the model", http.StatusServiceUnavailable)
		return
	}
	d.inFlight.Add(1)
	defer d.inFlight.Add(-1)
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var req completionRequest
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "want a JSON completion request: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	promptBytes := len(fmt.Sprint(req.Prompt))
	for _, m := range req.Messages {
		promptBytes += len(fmt.Sprint(m.Content))
	}
	prompt := max((promptBytes+3)/4, 1)
	n := d.tokens
	if req.MaxTokens > 0 {
		n = min(req.MaxTokens, 100_000)
	}
	w.Header().Set(api.HeaderPromptTokens, strconv.Itoa(prompt))
	if d.prefillTPS > 0 && !sleepCtx(r.Context(), time.Duration(float64(prompt)/d.prefillTPS*float64(time.Second))) {
		return
	}
	d.served.Add(1)
	id := fmt.Sprintf("cmpl-%s-%d", strings.ReplaceAll(d.name, "/", "-"), d.served.Load())
	if !req.Stream {
		var text strings.Builder
		for i := range n {
			if i > 0 && !sleepCtx(r.Context(), d.tokenDelay) {
				return
			}
			fmt.Fprintf(&text, "tok%d ", i)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "object": "text_completion", "model": "demo",
			"choices": []map[string]any{{"index": 0, "text": text.String(), "finish_reason": "length"}},
			"usage":   map[string]int{"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	for i := range n {
		if i > 0 && !sleepCtx(r.Context(), d.tokenDelay) {
			return
		}
		chunk, _ := json.Marshal(map[string]any{"id": id, "object": "text_completion", "model": "demo",
			"choices": []map[string]any{{"index": 0, "text": fmt.Sprintf("tok%d ", i)}}})
		fmt.Fprintf(w, "data: %s\n\n", chunk)
		if flusher != nil {
			flusher.Flush()
		}
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// sleepCtx waits d, or less if the request ends first (false then).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

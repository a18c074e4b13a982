package agent

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Readiness of service replicas. The agent probes the readiness path of
// each service replica's leader on its port (an HTTP GET at the node's
// address, as the gateway will reach it) every ProbeInterval, and reports
// the replica ready in its heartbeats while the probe answers 2xx or 3xx;
// after failureThreshold failures in a row a ready replica is reported not
// ready (it leaves the gateway's routes) but keeps running: readiness
// never stops a replica, and no probe result kills one for being slow to
// start. A change is reported at once, not at the next heartbeat, so that
// the cold start the server measures is the replica's and not the
// heartbeat interval's.

// failureThreshold is the probes in a row a ready replica must fail to be
// reported not ready (Kubernetes' default).
const failureThreshold = 3

// startProbe starts probing a replica's readiness, when it has a path.
func (a *agent) startProbe(name string, r *replica) {
	if r.rec.ReadinessPath == "" || r.rec.Port == 0 || a.probes[name] != nil {
		return
	}
	ctx, cancel := context.WithCancel(a.ctx)
	a.probes[name] = cancel
	url := "http://" + net.JoinHostPort(a.probeHost(), strconv.Itoa(r.rec.Port)) + r.rec.ReadinessPath
	go a.probeLoop(ctx, name, url)
}

// probeHost is where the replica is probed: the address the server routes
// its requests to.
func (a *agent) probeHost() string {
	if a.cfg.Address != "" {
		return a.cfg.Address
	}
	return "127.0.0.1"
}

// stopProbe stops probing a replica (it exited) and forgets its readiness.
func (a *agent) stopProbe(name string) {
	if cancel := a.probes[name]; cancel != nil {
		cancel()
		delete(a.probes, name)
	}
	a.mu.Lock()
	delete(a.ready, name)
	a.mu.Unlock()
}

// isReady reports a replica's readiness as last probed.
func (a *agent) isReady(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ready[name]
}

func (a *agent) probeLoop(ctx context.Context, name, url string) {
	client := &http.Client{Timeout: a.cfg.ProbeTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	ready, fails := false, 0
	t := time.NewTicker(a.cfg.ProbeInterval)
	defer t.Stop()
	for {
		ok := probeOnce(ctx, client, url)
		switch {
		case ok:
			fails = 0
		case ready:
			fails++
		}
		now := ok || (ready && fails < failureThreshold)
		if now != ready {
			ready = now
			a.mu.Lock()
			a.ready[name] = ready
			a.mu.Unlock()
			a.log.Info("replica readiness", "replica", name, "ready", ready, "probe", url)
			select {
			case a.notify <- struct{}{}:
			default:
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probeOnce asks the readiness path once.
func probeOnce(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// Package e2e holds the live control plane's end-to-end tests: they build
// the gpufleet binary, start a real server and real node agents as separate
// processes on 127.0.0.1, and drive them through the API while jobs run
// real processes. Every wait is bounded by a deadline.
package e2e

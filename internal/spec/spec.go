// Package spec reads the YAML files an operator writes: the fleet (topology,
// catalog, nodes), the queue tree (tenants, team queues, quotas) and jobs.
// Parsing is strict: an unknown key, a wrong type or a value out of range is
// an error that names the file, the line and column, the field path and the
// values that would have been accepted.
package spec

import (
	"fmt"
	"strings"

	"github.com/gpufleet/gpufleet/internal/fleet"
	"github.com/gpufleet/gpufleet/internal/quota"
	"github.com/gpufleet/gpufleet/internal/spec/guard"
)

// Error is one problem in a spec file; Errors every problem of one file.
// They live in package guard, which every reader of documents shares
// without linking the readers of specs.
type (
	Error     = guard.Error
	Errors    = guard.Errors
	SizeError = guard.SizeError
)

// Limits on documents (see package guard).
const (
	MaxDepth     = guard.MaxDepth
	MaxJobBytes  = guard.MaxJobBytes
	MaxFileBytes = guard.MaxFileBytes
)

// FormatBytes renders a size for people (see guard.FormatBytes).
func FormatBytes(n int64) string { return guard.FormatBytes(n) }

// CheckYAML guards a YAML document before it is parsed (guard.CheckYAML).
func CheckYAML(name string, data []byte, limit int64) error {
	return guard.CheckYAML(name, data, limit)
}

// CheckJSON guards a JSON document before it is parsed (guard.CheckJSON).
func CheckJSON(name string, data []byte, limit int64) error {
	return guard.CheckJSON(name, data, limit)
}

// maxErrors bounds how many problems one file reports; past it the rest are
// usually consequences of the first ones.
const maxErrors = 20

// Option adjusts what a parse checks against.
type Option func(*options)

type options struct {
	catalog *fleet.Catalog
	levels  []string
	queues  []quota.Spec
}

// WithFleet checks accelerator types against the fleet's catalog and
// topology levels against its levels, instead of the defaults.
func WithFleet(f *fleet.Fleet) Option {
	return func(o *options) {
		if f != nil {
			o.catalog = f.Catalog
			o.levels = f.Levels
		}
	}
}

// WithQueues checks that a job's queue is a leaf of this queue tree and that
// its tenant, when given, is the queue's tenant.
func WithQueues(specs []quota.Spec) Option {
	return func(o *options) { o.queues = specs }
}

func makeOptions(opts []Option) options {
	o := options{catalog: fleet.DefaultCatalog(), levels: fleet.DefaultLevels}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// maxNameLen bounds names of jobs, queues, nodes and domains.
const maxNameLen = 128

// checkName says why s is not a valid name, or returns "". Names start with
// a letter or digit and hold letters, digits, '-', '_' and '.'; they are
// used in paths, URLs and store keys.
func checkName(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > maxNameLen {
		return fmt.Sprintf("%q is longer than %d characters", s, maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum || !alnum && c != '-' && c != '_' && c != '.' {
			return fmt.Sprintf("%q: want letters, digits, '-', '_' or '.', starting with a letter or digit", s)
		}
	}
	return ""
}

// checkWord is checkName for short lowercase identifiers: tiers and
// topology levels.
func checkWord(s string) string {
	if s == "" {
		return "must not be empty"
	}
	if len(s) > 63 {
		return fmt.Sprintf("%q is longer than 63 characters", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		lower := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if i == 0 && !lower || !lower && c != '-' {
			return fmt.Sprintf("%q: want lowercase letters, digits and '-', starting with a letter or digit", s)
		}
	}
	return ""
}

// typeList renders catalog names for "want one of" messages.
func typeList(c *fleet.Catalog) string { return strings.Join(c.Names(), ", ") }

package spec

import (
	"strings"

	"github.com/gpufleet/gpufleet/internal/sched"
)

// Kind is what a spec file declares.
type Kind string

// The kinds of spec file.
const (
	KindFleet  Kind = "fleet"
	KindQueues Kind = "queues"
	KindJob    Kind = "job"
	// KindCatalog is a capacity plan's catalog of what can be bought.
	KindCatalog Kind = "catalog"
)

// Detect tells what a file declares from its first document: a top-level
// kind of fleet, queues, prices, commitments or credits, or a job kind
// (training, batch, ...), decides; otherwise its keys do (nodes or
// generate: a fleet; tenants: queues; gangs: a job; commitments:
// commitments; grants or budgets: credits).
func Detect(name string, data []byte) (Kind, error) {
	d := newDecoder(name)
	d.firstOnly = true
	docs := d.documents(data, MaxFileBytes)
	if d.failed() {
		return "", d.err()
	}
	if len(docs) == 0 {
		d.add(0, 0, "", "is empty")
		return "", d.err()
	}
	v := docs[0].root()
	ps, ok := v.pairs()
	if !ok && ps == nil {
		return "", d.err()
	}
	keys := map[string]value{}
	for _, p := range ps {
		keys[p.key] = p.val
	}
	if k, ok := keys["kind"]; ok {
		if s, isStr := k.scalarText(); isStr {
			switch s {
			case string(KindFleet):
				return KindFleet, nil
			case string(KindQueues):
				return KindQueues, nil
			case string(KindPrices), string(KindCommitments), string(KindCredits):
				return Kind(s), nil
			case string(KindCatalog):
				return KindCatalog, nil
			}
			if _, err := sched.ParseKind(s); err == nil {
				return KindJob, nil
			}
			k.errorf("%q: want fleet, queues, catalog, prices, commitments, credits or a job kind (%s)", s, joinKinds())
			return "", d.err()
		}
	}
	_, nodes := keys["nodes"]
	_, gen := keys["generate"]
	_, tenants := keys["tenants"]
	_, gangs := keys["gangs"]
	_, commitments := keys["commitments"]
	_, grants := keys["grants"]
	_, budgets := keys["budgets"]
	_, models := keys["models"]
	switch {
	case nodes || gen:
		return KindFleet, nil
	case tenants:
		return KindQueues, nil
	case gangs:
		return KindJob, nil
	case models:
		return KindCatalog, nil
	case commitments:
		return KindCommitments, nil
	case grants || budgets:
		return KindCredits, nil
	}
	v.errorf("cannot tell what this file declares: give kind: fleet, queues, catalog, prices, commitments, credits or a job kind, or the keys nodes, tenants, gangs, models, commitments or grants")
	return "", d.err()
}

func joinKinds() string { return strings.Join(sched.KindNames(), ", ") }

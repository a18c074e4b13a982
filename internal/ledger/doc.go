// Package ledger is gpufleet's accounting core: it turns usage records into
// metered accelerator-time, energy, carbon and charges, honours capacity
// commitments, burns down prepaid credits, watches monthly budgets, and
// makes chargeback reports and invoices that reconcile to the cent.
//
// Like the scheduling core it is pure and deterministic: it does no I/O,
// starts no goroutine and reads no clock. The driver feeds it usage records
// (Add), utilization samples (Sample) and the passing of time (Meter), and
// takes back events (Events); reports and invoices are functions of what
// was fed. Every quantity is an integer, computed exactly and rounded once
// per record and UTC day, so metering the same records in any order, with
// any metering cadence and any number of replays, gives the same report.
// docs/ACCOUNTING.md explains the model and the rounding rules.
//
// One Ledger is used from one goroutine at a time.
package ledger

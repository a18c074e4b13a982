// Package metering joins the scheduling core to the accounting ledger. It
// turns the core's usage records into the ledger's (Record), and what the
// ledger says back into the core's events: admission paused when a
// tenant's prepaid credits or monthly budget run out and resumed when they
// are topped up (Enforcer), and committed-tier quota for the term of each
// commitment (Quotas, Overlay). The live server and the simulator both
// drive it, so the rules that stop a tenant's work are the same in both.
//
// Like the core and the ledger it is pure: no I/O, no goroutine, no clock;
// time is an argument.
package metering

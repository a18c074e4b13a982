//go:build !unix

package ledger_test

func cpuSeconds() float64 { return 0 }

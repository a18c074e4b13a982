//go:build unix

package ledger_test

import "syscall"

// cpuSeconds returns the CPU time this process has used, user and system:
// on a machine shared with other work, throughput per CPU-second is what
// the code costs, where throughput per wall-second also measures the
// neighbours.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

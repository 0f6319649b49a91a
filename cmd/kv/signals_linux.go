package main

import (
	"os"
	"syscall"
)

// endSignals are the signals that end the command (see notifyContext):
// every signal whose default action (signal(7)) ends a process and that a
// Go program can catch, except SIGPIPE and SIGPROF (see notifyContext). The
// Go runtime alone would ignore SIGUSR1, SIGALRM, SIGXFSZ and the real-time
// signals, and dump its goroutines at SIGABRT, SIGTRAP, SIGSYS or
// SIGSTKFLT. Signals 32 to 34 (34 is the shell's SIGRTMIN) cannot be caught
// by a Go program (the runtime leaves them to the C library): like SIGKILL,
// they end the process at once.
var endSignals = func() []os.Signal {
	sigs := []os.Signal{
		syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGABRT,
		syscall.SIGBUS, syscall.SIGFPE, syscall.SIGUSR1, syscall.SIGSEGV, syscall.SIGUSR2, syscall.SIGALRM,
		syscall.SIGTERM, syscall.SIGSTKFLT, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGVTALRM, syscall.SIGIO,
		syscall.SIGPWR, syscall.SIGSYS,
	}
	for n := 35; n <= 64; n++ { // SIGRTMIN+1 to SIGRTMAX, as the shell numbers them
		sigs = append(sigs, syscall.Signal(n))
	}
	return sigs
}()

// signalNames name endSignals in messages.
var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT", syscall.SIGILL: "SIGILL",
	syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT", syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE",
	syscall.SIGUSR1: "SIGUSR1", syscall.SIGSEGV: "SIGSEGV", syscall.SIGUSR2: "SIGUSR2", syscall.SIGALRM: "SIGALRM",
	syscall.SIGTERM: "SIGTERM", syscall.SIGSTKFLT: "SIGSTKFLT", syscall.SIGXCPU: "SIGXCPU", syscall.SIGXFSZ: "SIGXFSZ",
	syscall.SIGVTALRM: "SIGVTALRM", syscall.SIGIO: "SIGIO", syscall.SIGPWR: "SIGPWR", syscall.SIGSYS: "SIGSYS",
}

//go:build !linux

package main

import (
	"os"
	"syscall"
)

// endSignals are the signals that end the command (see notifyContext):
// those of the signals every system names whose default action ends a
// process, except SIGPIPE (see notifyContext).
var endSignals = []os.Signal{
	syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGABRT,
	syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV, syscall.SIGALRM, syscall.SIGTERM,
}

// signalNames name endSignals in messages.
var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT", syscall.SIGILL: "SIGILL",
	syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT", syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE",
	syscall.SIGSEGV: "SIGSEGV", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
}

package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestSignalContext_secondSignalStops: the first SIGINT cancels the
// command's context, so a pass stops safely; a second one takes the default
// action and ends the process, as an operator pressing Ctrl-C twice
// expects while psa-syncd waits for a sent write to finish. The test runs
// its own binary again, as the child that receives the signals.
func TestSignalContext_secondSignalStops(t *testing.T) {
	if os.Getenv("PSA_SYNCD_SIGNAL_CHILD") == "1" {
		ctx, stop := signalContext(context.Background())
		defer stop()
		self, _ := os.FindProcess(os.Getpid())
		_ = self.Signal(os.Interrupt)
		<-ctx.Done() // the first signal stops the command
		_ = self.Signal(os.Interrupt)
		// A command still waiting (for a sent write, say): only the
		// second signal's default action ends the process.
		time.Sleep(10 * time.Second)
		os.Exit(0)
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSignalContext_secondSignalStops$")
	cmd.Env = append(os.Environ(), "PSA_SYNCD_SIGNAL_CHILD=1")
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child ended with %v; want it killed by the second SIGINT", err)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Fatalf("child ended with %v; want it killed by the second SIGINT", err)
	}
}

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

// TestSignalContext_secondSignalStops: the first SIGTERM cancels the
// command's context, so a pass stops safely; a second one takes the default
// action and ends the process, as an operator pressing Ctrl-C twice (or a
// process manager signalling twice) expects while psa-syncd waits for a
// sent write to finish. The test runs its own binary again, as the child
// that receives the signals. SIGTERM, not SIGINT: a shell starts a
// background job with SIGINT ignored, and Go then keeps it ignored once
// the signal is no longer caught, as it should.
func TestSignalContext_secondSignalStops(t *testing.T) {
	if os.Getenv("PSA_SYNCD_SIGNAL_CHILD") == "1" {
		ctx, stop := signalContext(context.Background())
		defer stop()
		self, _ := os.FindProcess(os.Getpid())
		_ = self.Signal(syscall.SIGTERM)
		<-ctx.Done() // the first signal stops the command
		// A command still waiting (for a sent write, say): only a later
		// signal's default action ends the process. The handler is
		// removed just after the context is done, so signal a few times,
		// as an operator would press Ctrl-C again.
		for range 200 {
			time.Sleep(50 * time.Millisecond)
			_ = self.Signal(syscall.SIGTERM)
		}
		os.Exit(0)
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSignalContext_secondSignalStops$")
	cmd.Env = append(os.Environ(), "PSA_SYNCD_SIGNAL_CHILD=1")
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child ended with %v; want it killed by the second SIGTERM", err)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Fatalf("child ended with %v; want it killed by the second SIGTERM", err)
	}
}

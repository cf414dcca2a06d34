package provider

import (
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
)

type testContextKey struct{}

// TestNewProtocol6_releasesCallContexts checks that nothing holds the
// context of a call after it has returned: the framework's own server keeps
// every call's context until StopProvider.
func TestNewProtocol6_releasesCallContexts(t *testing.T) {
	server := NewProtocol6(New("test")())()
	calls := map[string]func(context.Context){
		"ValidateResourceConfig": func(ctx context.Context) {
			_, _ = server.ValidateResourceConfig(ctx, &tfprotov6.ValidateResourceConfigRequest{TypeName: "psa_service"})
		},
		"UpgradeResourceState": func(ctx context.Context) {
			_, _ = server.UpgradeResourceState(ctx, &tfprotov6.UpgradeResourceStateRequest{TypeName: "psa_service"})
		},
		"ReadResource": func(ctx context.Context) {
			_, _ = server.ReadResource(ctx, &tfprotov6.ReadResourceRequest{TypeName: "psa_service"})
		},
		"PlanResourceChange": func(ctx context.Context) {
			_, _ = server.PlanResourceChange(ctx, &tfprotov6.PlanResourceChangeRequest{TypeName: "psa_service"})
		},
		"ValidateDataResourceConfig": func(ctx context.Context) {
			_, _ = server.ValidateDataResourceConfig(ctx, &tfprotov6.ValidateDataResourceConfigRequest{TypeName: "psa_service"})
		},
	}
	for name, call := range calls {
		collected := make(chan struct{})
		func() {
			value := new([1 << 16]byte)
			runtime.AddCleanup(value, func(ch chan struct{}) { close(ch) }, collected)
			// gRPC cancels a call's context when the call returns.
			ctx, cancel := context.WithCancel(context.WithValue(t.Context(), testContextKey{}, value))
			call(ctx)
			cancel()
		}()
		if !collectedAfterGC(collected) {
			t.Errorf("%s: the context of the call is still held after it returned", name)
		}
	}
}

// collectedAfterGC runs the garbage collector until collected is closed,
// and reports whether it was.
func collectedAfterGC(collected <-chan struct{}) bool {
	for range 50 {
		runtime.GC()
		select {
		case <-collected:
			return true
		case <-time.After(10 * time.Millisecond): // cleanups run on a goroutine of their own
		}
	}
	return false
}

func TestCallContext(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(t.Context(), testContextKey{}, "value"))
	c := newCallContext(parent)
	if got := c.Value(testContextKey{}); got != "value" {
		t.Errorf("Value before release = %v, want the call's value", got)
	}
	if c.Done() != parent.Done() || c.Err() != nil {
		t.Errorf("Done, Err before release = %v, %v; want the call's", c.Done(), c.Err())
	}
	child, stop := context.WithCancel(c)
	defer stop()

	c.release()
	if got := c.Value(testContextKey{}); got != nil {
		t.Errorf("Value after release = %v, want nil", got)
	}
	if c.Err() != nil {
		t.Errorf("Err after release, before the call's context is done = %v, want nil", c.Err())
	}
	cancel()
	<-child.Done() // a context derived from the call's is canceled with it
	if !errors.Is(c.Err(), context.Canceled) {
		t.Errorf("Err after the call's context is done = %v, want context.Canceled", c.Err())
	}
}

func TestTuneGarbageCollector(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	TuneGarbageCollector(func(string) string { return "" })
	if got := debug.SetGCPercent(150); got != gcPercent {
		t.Errorf("GOGC without GOGC in the environment = %d, want %d", got, gcPercent)
	}
	TuneGarbageCollector(func(name string) string {
		if name == "GOGC" {
			return "150"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 150 {
		t.Errorf("GOGC with GOGC=150 in the environment = %d, want 150 (the runtime's reading of it)", got)
	}
}

package provider

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
)

// NewProtocol6 returns the provider's protocol 6 server, as
// providerserver.NewProtocol6 does, but with the context of every call per
// resource or data source let go when the call returns, and with the calls
// of a refresh plan answered without the framework where they can be (see
// fastPaths; p must be the provider New returns for those).
//
// The framework's server (terraform-plugin-framework v1.19.0,
// internal/proto6server.registerContext) derives a cancelable context from
// each call's and keeps its cancel function until StopProvider, which
// Terraform sends only to interrupt a command. Each kept function holds
// the call's whole context: the gRPC stream and the logger contexts of
// terraform-plugin-go, about 12 KB a call. A plan of 1,200 resources makes
// about 5,000 calls, and the 60 MB they kept made every garbage collection
// mark ten times the memory the provider uses: a quarter of the plan's
// CPU time in the provider went to the garbage collector. The server here
// hands the framework a callContext, which forwards to the call's context
// until the call returns and then drops it, so that what the framework
// keeps is a few small objects per call.
//
// ConfigureProvider keeps its context: the backends' logger writes with it
// for the life of the process (see newBackendLogger). The other calls made
// once per process are left as they are.
func NewProtocol6(p provider.Provider) func() tfprotov6.ProviderServer {
	framework := providerserver.NewProtocol6(p)
	psa, _ := p.(*psaProvider)
	fast := &fastPaths{provider: psa}
	return func() tfprotov6.ProviderServer {
		return releasingServer{framework(), fast}
	}
}

// releasingServer is a framework server whose calls per resource and data
// source get a callContext, and whose calls of a refresh plan take the
// fast paths where they can.
type releasingServer struct {
	tfprotov6.ProviderServer
	fast *fastPaths
}

func (s releasingServer) ValidateResourceConfig(ctx context.Context, req *tfprotov6.ValidateResourceConfigRequest) (*tfprotov6.ValidateResourceConfigResponse, error) {
	return withCallContext(ctx, req, s.fast.validateResourceConfig, s.ProviderServer.ValidateResourceConfig)
}

func (s releasingServer) UpgradeResourceState(ctx context.Context, req *tfprotov6.UpgradeResourceStateRequest) (*tfprotov6.UpgradeResourceStateResponse, error) {
	return withCallContext(ctx, req, s.fast.upgradeResourceState, s.ProviderServer.UpgradeResourceState)
}

func (s releasingServer) ReadResource(ctx context.Context, req *tfprotov6.ReadResourceRequest) (*tfprotov6.ReadResourceResponse, error) {
	return withCallContext(ctx, req, s.fast.readResource, s.ProviderServer.ReadResource)
}

func (s releasingServer) PlanResourceChange(ctx context.Context, req *tfprotov6.PlanResourceChangeRequest) (*tfprotov6.PlanResourceChangeResponse, error) {
	return withCallContext(ctx, req, s.fast.planResourceChange, s.ProviderServer.PlanResourceChange)
}

// ApplyResourceChange marks the provider's data as applying: the plans
// Terraform makes again of the changes after this one no longer fail on
// the API budget (see checkPSABudget).
func (s releasingServer) ApplyResourceChange(ctx context.Context, req *tfprotov6.ApplyResourceChangeRequest) (*tfprotov6.ApplyResourceChangeResponse, error) {
	if s.fast.provider != nil {
		if d := s.fast.provider.configured.Load(); d != nil {
			d.applying.Store(true)
		}
	}
	return withCallContext(ctx, req, nil, s.ProviderServer.ApplyResourceChange)
}

func (s releasingServer) ImportResourceState(ctx context.Context, req *tfprotov6.ImportResourceStateRequest) (*tfprotov6.ImportResourceStateResponse, error) {
	return withCallContext(ctx, req, nil, s.ProviderServer.ImportResourceState)
}

func (s releasingServer) ValidateDataResourceConfig(ctx context.Context, req *tfprotov6.ValidateDataResourceConfigRequest) (*tfprotov6.ValidateDataResourceConfigResponse, error) {
	return withCallContext(ctx, req, nil, s.ProviderServer.ValidateDataResourceConfig)
}

func (s releasingServer) ReadDataSource(ctx context.Context, req *tfprotov6.ReadDataSourceRequest) (*tfprotov6.ReadDataSourceResponse, error) {
	return withCallContext(ctx, req, nil, s.ProviderServer.ReadDataSource)
}

// withCallContext calls fast, when there is one, and call when fast has no
// answer, with a callContext of ctx, released when they return.
func withCallContext[Req, Resp any](ctx context.Context, req Req, fast func(context.Context, Req) *Resp, call func(context.Context, Req) (*Resp, error)) (*Resp, error) {
	c := newCallContext(ctx)
	defer c.release()
	if fast != nil {
		if resp := fast(c, req); resp != nil {
			return resp, nil
		}
	}
	return call(c, req)
}

// callContext is the context of one call to the provider: it forwards to
// the call's context until release, and then answers as a context that
// holds no values and is done when the call's was.
//
// A goroutine that outlives the call, such as a batch of reads (see
// readCache), keeps working after the release but no longer finds the
// call's loggers: what it logs then is dropped. Cancellation is unchanged,
// as gRPC cancels a call's context when the call returns anyway.
type callContext struct {
	ctx  atomic.Pointer[context.Context] // nil once released
	done <-chan struct{}
}

func newCallContext(ctx context.Context) *callContext {
	c := &callContext{done: ctx.Done()}
	c.ctx.Store(&ctx)
	return c
}

// release drops the call's context.
func (c *callContext) release() { c.ctx.Store(nil) }

func (c *callContext) Deadline() (time.Time, bool) {
	if ctx := c.ctx.Load(); ctx != nil {
		return (*ctx).Deadline()
	}
	return time.Time{}, false
}

// Done is the call's channel, so that contexts derived from a callContext
// are canceled with the call's, as they would be without it.
func (c *callContext) Done() <-chan struct{} { return c.done }

func (c *callContext) Err() error {
	if ctx := c.ctx.Load(); ctx != nil {
		return (*ctx).Err()
	}
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}

func (c *callContext) Value(key any) any {
	if ctx := c.ctx.Load(); ctx != nil {
		return (*ctx).Value(key)
	}
	return nil
}

// gcPercent is the provider process's GOGC unless the environment sets
// one.
//
// The process lives for one Terraform command and keeps little: a plan of
// 1,200 resources holds about 4 MB between calls, while each call
// allocates and drops about 100 KB in the framework. With Go's default of
// 100 the heap never grows past a few MB, and the plan ran 140 garbage
// collections, a fifth of the provider's CPU time. At 400 it runs about 35
// and the process's peak memory stays within a few MB of the default's.
const gcPercent = 400

// TuneGarbageCollector sets the garbage collector for a provider process
// (see gcPercent), unless GOGC is set in its environment: an explicit GOGC,
// and GOMEMLIMIT, keep their usual meaning. getenv is os.Getenv.
func TuneGarbageCollector(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

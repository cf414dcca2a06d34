package autotask

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// ThresholdInformation is the tenant's API usage: how many requests it may
// make per time frame (10,000 per rolling 60 minutes by default, shared by
// every integration of the database) and how many it made.
type ThresholdInformation struct {
	ExternalRequestThreshold     int `json:"externalRequestThreshold"`
	RequestThresholdTimeframe    int `json:"requestThresholdTimeframe"` // minutes
	CurrentTimeframeRequestCount int `json:"currentTimeframeRequestCount"`
}

// validate refuses an answer without the threshold and its time frame
// (both 0: JSON that is not Autotask's), which would read as a budget of
// no requests.
func (t *ThresholdInformation) validate() error {
	if t.ExternalRequestThreshold == 0 && t.RequestThresholdTimeframe == 0 {
		return &missingKeyError{key: `"externalRequestThreshold"`}
	}
	return nil
}

// Remaining returns the requests left in the time frame.
func (t ThresholdInformation) Remaining() int {
	return t.ExternalRequestThreshold - t.CurrentTimeframeRequestCount
}

// Timeframe returns the time frame as a duration.
func (t ThresholdInformation) Timeframe() time.Duration {
	return time.Duration(t.RequestThresholdTimeframe) * time.Minute
}

// ThresholdInformation reads the tenant's API usage (GET
// ThresholdInformation; it counts against the budget itself) and records it
// for Budget.
func (c *Client) ThresholdInformation(ctx context.Context) (*ThresholdInformation, *Response, error) {
	req, err := c.NewRequest(ctx, http.MethodGet, "ThresholdInformation", nil)
	if err != nil {
		return nil, nil, err
	}
	var ti ThresholdInformation
	resp, err := c.Do(ctx, req, &ti)
	if err != nil {
		return nil, resp, err
	}
	c.threshold.set(ti)
	return &ti, resp, nil
}

// Budget returns the client's estimate of the tenant's API usage: the last
// ThresholdInformation read plus the requests this client sent since. ok is
// false before ThresholdInformation was first read. Other integrations of the
// tenant also spend the budget, so read ThresholdInformation again before
// long runs.
func (c *Client) Budget() (ti ThresholdInformation, ok bool) {
	return c.threshold.estimate()
}

// thresholdTracker tracks the hourly budget between ThresholdInformation
// reads.
type thresholdTracker struct {
	mu    sync.Mutex
	last  ThresholdInformation
	known bool
	since int // requests sent after the last reading
}

func (t *thresholdTracker) set(ti ThresholdInformation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last, t.known, t.since = ti, true, 0
}

func (t *thresholdTracker) count() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.since++
}

func (t *thresholdTracker) estimate() (ThresholdInformation, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ti := t.last
	ti.CurrentTimeframeRequestCount += t.since
	return ti, t.known
}

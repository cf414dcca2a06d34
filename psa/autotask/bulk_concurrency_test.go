package autotask

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"
)

// bulkGet sends its queries of 500 ids at once, up to MaxConcurrency (the
// day's read of 20,000 contracts and of their companies is 40 queries each,
// one after another 0.8 s or more), returns every chunk's rows, and fails
// as a whole when one query fails.
func TestBulkGet_queriesAtOnce(t *testing.T) {
	t.Parallel()
	ids := make([]string, 3*MaxPageSize)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	arrived := make(chan struct{}, 3)
	release := make(chan struct{})
	list := func(ctx context.Context, _ *Query) ([]*Company, *Response, error) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
		return []*Company{{ID: 1}}, &Response{}, nil
	}
	done := make(chan error, 1)
	var got []*Company
	go func() {
		var err error
		got, err = bulkGet(t.Context(), ids, list)
		done <- err
	}()
	for i := range MaxConcurrency {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d queries in flight, want %d at once", i, MaxConcurrency)
		}
	}
	close(release)
	if err := <-done; err != nil || len(got) != 3 {
		t.Fatalf("bulkGet = %d rows, %v; want 3 (one a query)", len(got), err)
	}

	boom := errors.New("boom")
	failing := func(context.Context, *Query) ([]*Company, *Response, error) { return nil, nil, boom }
	if _, err := bulkGet(t.Context(), ids, failing); !errors.Is(err, boom) {
		t.Errorf("bulkGet with failing queries = %v, want %v", err, boom)
	}
}

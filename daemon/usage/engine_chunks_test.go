package usage

import (
	"slices"
	"strconv"
	"testing"
)

// TestChunkContracts checks that chunkOf names the chunk of
// chunkContracts that holds each contract, with and without the small
// first chunk of a large pass, and that the chunks hold every id once,
// in order.
func TestChunkContracts(t *testing.T) {
	for _, n := range []int{0, 1, readChunk, readChunk + 1, firstChunkSplitAfter * readChunk, firstChunkSplitAfter*readChunk + 1, 20_000} {
		ids := make([]string, n)
		for k := range ids {
			ids[k] = strconv.Itoa(k)
		}
		chunks := chunkContracts(ids)
		if got := slices.Concat(chunks...); !slices.Equal(got, ids) && n > 0 {
			t.Fatalf("n=%d: the chunks hold %d ids, not the %d given in order", n, len(got), n)
		}
		for i, c := range chunks {
			if len(c) == 0 || len(c) > readChunk {
				t.Fatalf("n=%d: chunk %d holds %d ids", n, i, len(c))
			}
			for _, id := range c {
				k, _ := strconv.Atoi(id)
				if got := chunkOf(k, n); got != i {
					t.Fatalf("n=%d: chunkOf(%d) = %d, but chunk %d holds it", n, k, got, i)
				}
			}
		}
		split := n > firstChunkSplitAfter*readChunk
		if split && len(chunks[0]) != firstReadChunk {
			t.Errorf("n=%d: the first chunk holds %d contracts, want %d", n, len(chunks[0]), firstReadChunk)
		}
		if !split && n > 0 && len(chunks[0]) != min(n, readChunk) {
			t.Errorf("n=%d: the first chunk holds %d contracts, want %d", n, len(chunks[0]), min(n, readChunk))
		}
	}
}

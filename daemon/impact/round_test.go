package impact

import "testing"

// TestRound2 rounds amounts to cents as a person would, halves away from
// zero, also where the binary product lies just under the half.
func TestRound2(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want float64 }{
		{3 * 0.095, 0.29}, {-3 * 0.095, -0.29}, {1.005, 1.01}, {0.284, 0.28}, {2.675, 2.68},
		{12345.675, 12345.68}, {0, 0}, {-0.001, 0}, {225, 225},
	} {
		if got := round2(tt.in); got != tt.want {
			t.Errorf("round2(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

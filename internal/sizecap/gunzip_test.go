package sizecap

import (
	"bytes"
	"compress/gzip"
	"errors"
	"testing"
)

// TestGunzip: a stream of two members decompresses whole, up to the cap;
// one byte more is ErrDecompressedTooLarge.
func TestGunzip(t *testing.T) {
	t.Parallel()
	var z bytes.Buffer
	for _, part := range []string{"hello, ", "world"} {
		zw := gzip.NewWriter(&z)
		if _, err := zw.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := Gunzip(z.Bytes(), 12); err != nil || string(got) != "hello, world" {
		t.Errorf("Gunzip(limit 12) = %q, %v; want %q", got, err, "hello, world")
	}
	if got, err := Gunzip(z.Bytes(), 11); !errors.Is(err, ErrDecompressedTooLarge) {
		t.Errorf("Gunzip(limit 11) = %q, %v; want ErrDecompressedTooLarge", got, err)
	}
}

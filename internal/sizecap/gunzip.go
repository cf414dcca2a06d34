package sizecap

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
)

// ErrDecompressedTooLarge is the error of Gunzip for a stream that
// decompresses to more than the cap.
var ErrDecompressedTooLarge = errors.New("sizecap: decompresses to more than the cap")

// Gunzip returns z, a gzip stream of one or more members, decompressed,
// of at most limit bytes: a few hundred KB of gzip can decompress to GBs,
// so no more than limit+1 bytes are read, and a stream of more is
// ErrDecompressedTooLarge. Other errors are those of compress/gzip.
func Gunzip(z []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, ErrDecompressedTooLarge
	}
	return data, nil
}

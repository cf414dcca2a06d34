// Package sizecap reads a file whole, up to a cap on its size. Every file
// psa-sync reads whole (the mapping export, a usage file, a Terraform plan,
// a *_file secret) goes through it, so that a setting naming the wrong file
// (a multi-GiB log, /dev/zero) fails at once with an error naming the file
// and the cap, instead of taking all the memory there is.
package sizecap

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// TooLargeError is the error of ReadFile for a file larger than the cap.
type TooLargeError struct {
	// Path is the file, as given to ReadFile.
	Path string
	// Limit is the cap, in bytes.
	Limit int64
	// What says what the file should hold, as in "the most psa-sync
	// reads of a usage file"; empty leaves that out.
	What string
}

// Error names the file and the cap, and what the file should hold.
func (e *TooLargeError) Error() string {
	s := fmt.Sprintf("%s is larger than %s", e.Path, Format(e.Limit))
	if e.What != "" {
		s += ", the most psa-sync reads of " + e.What
	}
	return s
}

// ReadFile reads the file at path, of at most limit bytes. A larger file
// is a *TooLargeError: a regular file whose size says so is not read at
// all, and of any other (a device, a pipe, a file growing while it is
// read) no more than limit+1 bytes are read. Other errors are those of
// os.ReadFile.
func ReadFile(path string, limit int64, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadOpen(f, path, limit, what)
}

// ReadOpen is ReadFile of a file the caller opened (and closes), for a
// caller that also looks at the open file (the usage file source stats it
// before and after, to tell a file written while it was read). path names
// it in errors.
func ReadOpen(f fs.File, path string, limit int64, what string) ([]byte, error) {
	var size int64
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		if fi.Size() > limit {
			return nil, &TooLargeError{Path: path, Limit: limit, What: what}
		}
		size = fi.Size()
	}
	buf := make([]byte, 0, min(size, limit)+1)
	data, err := readAll(io.LimitReader(f, limit+1), buf)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// The file's own error names it already: "read P: is a
		// directory", not "read P: read P: is a directory".
		return nil, err
	}
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	if int64(len(data)) > limit {
		return nil, &TooLargeError{Path: path, Limit: limit, What: what}
	}
	return data, nil
}

// readAll is io.ReadAll into buf, which is sized for the whole file when
// its size is known.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// Format says a size in the largest binary unit that divides it: "64
// MiB", "64 KiB", "1000 bytes".
func Format(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n == 1:
		return "1 byte"
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// Package sizecap reads a file whole, up to a cap on its size. Every file
// psa-sync reads whole (the mapping export, a usage file, a Terraform plan,
// a *_file secret) goes through it, so that a setting naming the wrong file
// (a multi-GiB log, /dev/zero) fails at once with an error naming the file
// and the cap, instead of taking all the memory there is. Gunzip bounds
// likewise what a compressed value psa-sync stores decompresses to.
package sizecap

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
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

// ChangedError is the error of ReadStable for a file that changed while it
// was read: a program wrote it in place meanwhile (shell ">", cp, a script
// that truncates and rewrites it), so that what was read may be any part of
// either version, or of neither.
type ChangedError struct {
	// Path is the file, as given to ReadStable.
	Path string
	// Before and After are what the open file's stat said before and
	// after the read; Read is how many bytes were read.
	Before, After fs.FileInfo
	Read          int64
}

// Error names the file and says what changed.
func (e *ChangedError) Error() string {
	return fmt.Sprintf("%s changed while it was read (%s)", e.Path, e.Detail())
}

// Detail says what the file's stat said before and after the read, and
// how many bytes were read, for a caller's own message.
func (e *ChangedError) Detail() string {
	return fmt.Sprintf("%d bytes and modified at %s before the read, %d bytes read, %d bytes and modified at %s after",
		e.Before.Size(), e.Before.ModTime().UTC().Format(time.RFC3339Nano), e.Read, e.After.Size(), e.After.ModTime().UTC().Format(time.RFC3339Nano))
}

// ReadStable is ReadFile that also fails, with a *ChangedError, when the
// file changed while it was read: see ReadOpenStable.
func ReadStable(path string, limit int64, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadOpenStable(f, path, limit, what)
}

// ReadOpenStable is ReadOpen of a file the caller opened (and closes) that
// also fails, with a *ChangedError, when the open file's size or
// modification time after the read differ from those before it, or the
// bytes read from its size: a writer went on during the read. A file
// replaced by a rename meanwhile is no change: the open file is the old
// one, read whole. Not caught: a writer that paused for the whole read (a
// file that stays half written); only a file written elsewhere and renamed
// over path is safe from that. A pipe or a device has no size to compare,
// and is read as ReadOpen reads it.
func ReadOpenStable(f fs.File, path string, limit int64, what string) ([]byte, error) {
	before, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data, err := ReadOpen(f, path, limit, what)
	if err != nil || !before.Mode().IsRegular() {
		return data, err
	}
	after, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) || int64(len(data)) != after.Size() {
		return nil, &ChangedError{Path: path, Before: before, After: after, Read: int64(len(data))}
	}
	return data, nil
}

// OnFirstRead returns f, reading as f reads, that runs hook once, after
// its first read that returned bytes: for a test whose writer changes the
// file while ReadOpenStable reads it. A first > 0 makes that first read
// return at most first bytes, as a read of a large file may, so that the
// rest is read after the writer went on.
func OnFirstRead(f *os.File, first int, hook func()) fs.File {
	return &hookedFile{File: f, first: first, hook: hook}
}

type hookedFile struct {
	*os.File
	first int
	hook  func()
}

func (f *hookedFile) Read(b []byte) (int, error) {
	if f.hook != nil && f.first > 0 && len(b) > f.first {
		b = b[:f.first]
	}
	n, err := f.File.Read(b)
	if n > 0 && f.hook != nil {
		hook := f.hook
		f.hook = nil
		hook()
	}
	return n, err
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

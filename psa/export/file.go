package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/psa-sync/terraform-provider-psa/internal/sizecap"
)

// FileBackend keeps the export in a local file. Versions are content
// digests, so a file changed by hand is noticed like any other write. Save
// holds the same in-process mutex and advisory lock file as Store.Update,
// so the two can be mixed on one file.
type FileBackend struct {
	path string
	// like is the file whose group and read bits a new file gets: the
	// export's, for a Sibling. "" gives 0644 less the umask.
	like string
}

// Ensure FileBackend satisfies Backend.
var _ Backend = (*FileBackend)(nil)

// NewFileBackend returns the Backend for the export file at path. It does
// not touch the file system.
func NewFileBackend(path string) *FileBackend { return &FileBackend{path: path} }

// String returns the path.
func (b *FileBackend) String() string { return b.path }

// Modes of access(2), with POSIX's values, for FileBackend.CheckWritable.
const (
	AccessWrite  = 0x2 // W_OK
	AccessSearch = 0x1 // X_OK
)

// CheckWritable reports, without writing, whether access (SystemAccess,
// or a test's) lets this process write the export: Save creates the
// missing directories, a temporary file and the lock file in the file's
// directory and renames the temporary file over the export, all of which
// need write and search permission on that directory, or on the nearest
// one that exists (the missing ones below it are created by this user).
// The export's own mode does not matter: the rename replaces it. A
// symbolic link is followed, as Save follows it. The error names the
// directory; it is about this process's user only.
func (b *FileBackend) CheckWritable(access func(path string, mode uint32) error) error {
	path := b.path
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	dir := filepath.Dir(path)
	for {
		info, err := os.Stat(dir)
		if err == nil && !info.IsDir() {
			return fmt.Errorf("%s%s is not a directory", prefix(b.path), dir)
		}
		if err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if !errors.Is(err, fs.ErrNotExist) || parent == dir {
			return fmt.Errorf("%s%w", prefix(b.path), err)
		}
		dir = parent
	}
	if err := access(dir, AccessWrite|AccessSearch); err != nil {
		return fmt.Errorf("%scannot create files in %s: %w", prefix(b.path), dir, err)
	}
	return nil
}

// Digest returns the version of data as a file or psa-syncd store
// reports it: "sha256:" and the hex SHA-256 of the bytes.
func Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// fileDigest returns the Digest of the file at path, read through the hash
// rather than into memory: the conditional reads and writes of an apply
// compare the digest of a file of a thousand mappings a hundred times. A
// file larger than MaxSize is an error (tooLarge), not hashed to its end:
// an endless one (/dev/zero) would never end.
func fileDigest(path string) (string, error) {
	if err := notBlocking(path); err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, MaxSize+1))
	if err != nil {
		return "", err
	}
	if n > MaxSize {
		return "", errTooLarge
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// readExportFile reads an export file of at most MaxSize bytes, as the other
// stores read theirs, and fails when it changed while it was read
// (sizecap.ReadOpenStable): a program that writes it in place leaves it
// half written meanwhile, and a half cut at the end of a mapping may even
// decode, the mappings after it gone.
func readExportFile(path string) ([]byte, error) {
	return readExportFileHooked(path, 0, nil)
}

// readExportFileHooked is readExportFile; hook, unless nil, runs after the
// first read, of at most first bytes when first > 0 (tests:
// sizecap.OnFirstRead).
func readExportFileHooked(path string, first int, hook func()) ([]byte, error) {
	if err := notBlocking(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r fs.File = f
	if hook != nil {
		r = sizecap.OnFirstRead(f, first, hook)
	}
	data, err := sizecap.ReadOpenStable(r, path, MaxSize, "a mapping export")
	var tl *sizecap.TooLargeError
	if errors.As(err, &tl) {
		return nil, errTooLarge
	}
	var ce *sizecap.ChangedError
	if errors.As(err, &ce) {
		return nil, fmt.Errorf("the file changed while it was read (%s): a program writes it in place; the provider writes it through a "+
			"temporary file in the same directory renamed over it, and whatever else writes it should do the same", ce.Detail())
	}
	return data, err
}

// notBlocking refuses an export path that names a named pipe or a socket:
// opening a pipe to read blocks until something opens it to write, which
// would stop psa-syncd's export watch (and an apply) without a word. A
// store polled for changes is a regular file; a device such as /dev/zero
// is left to the cap.
func notBlocking(path string) error {
	// A path that cannot be stat'ed is left to os.Open, whose error says
	// it better.
	if fi, err := os.Stat(path); err == nil && fi.Mode()&(fs.ModeNamedPipe|fs.ModeSocket) != 0 {
		return fmt.Errorf("the file is a %s, not a regular file; name the mapping export's file", fileKind(fi.Mode()))
	}
	return nil
}

func fileKind(m fs.FileMode) string {
	if m&fs.ModeSocket != 0 {
		return "socket"
	}
	return "named pipe"
}

// errTooLarge is the error for an export file larger than MaxSize; the
// caller's prefix names the file.
var errTooLarge = fmt.Errorf("the file is larger than %s, the most psa-sync reads of a mapping export; is it the mapping export?", sizecap.Format(MaxSize))

// Load reads the file, or only hashes it when it is still ifNoneMatch.
func (b *FileBackend) Load(_ context.Context, ifNoneMatch string) (Blob, error) {
	if ifNoneMatch != "" {
		if v, err := fileDigest(b.path); err == nil && v == ifNoneMatch {
			return Blob{Version: v}, ErrNotModified
		}
	}
	data, err := readExportFile(b.path)
	if errors.Is(err, fs.ErrNotExist) {
		return Blob{}, fmt.Errorf("%s%w (no mapping export has been written there yet)", prefix(b.path), fs.ErrNotExist)
	}
	if err != nil {
		return Blob{}, fmt.Errorf("%sreading: %w", prefix(b.path), err)
	}
	v := Digest(data)
	if ifNoneMatch != "" && v == ifNoneMatch {
		return Blob{Version: v}, ErrNotModified
	}
	return Blob{Data: data, Version: v}, nil
}

// Save replaces the file atomically if its digest is still ifMatch (or, for
// an empty ifMatch, if it does not exist). The parent directory is created
// when missing; a symbolic link is followed and its target replaced.
// Temporary files that a killed writer left behind are removed first, as
// Store.Update does.
func (b *FileBackend) Save(_ context.Context, data []byte, ifMatch string) (string, error) {
	path, unlock, err := lockForWrite(b.path)
	if err != nil {
		return "", err
	}
	defer unlock()
	removeStaleTemps(path)

	current, err := fileDigest(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if ifMatch != "" {
			return "", fmt.Errorf("%s%w: the file was removed", prefix(b.path), ErrConflict)
		}
	case err != nil:
		return "", fmt.Errorf("%sreading: %w", prefix(b.path), err)
	case ifMatch == "" || current != ifMatch:
		return "", fmt.Errorf("%s%w", prefix(b.path), ErrConflict)
	}
	if err := writeFile(path, data, b.like); err != nil {
		return "", fmt.Errorf("%swriting: %w", prefix(b.path), err)
	}
	return Digest(data), nil
}

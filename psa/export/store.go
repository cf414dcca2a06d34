package export

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/internal/durable"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// Store reads and writes a mapping export file.
//
// Reads need no lock: writes replace the file atomically, so a reader sees
// either the old or the new document, never a mix. Update serialises
// writers twice over: with a mutex per file shared by every Store in the
// process (Terraform applies resources in parallel, each with its own
// provider call), and with an advisory lock on a companion file path+".lock"
// that other processes take too (two `terraform apply` runs, or an apply and
// `psa-syncd validate`). The lock file is left in place; deleting it while a
// writer holds it would let a second writer in.
//
// A Store is safe for concurrent use.
type Store struct {
	path string
	now  func() time.Time
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithClock sets the clock Update uses for updated_at. The default is
// time.Now.
func WithClock(now func() time.Time) StoreOption {
	return func(s *Store) { s.now = now }
}

// NewStore returns a Store for the export file at path. It does not touch
// the file system.
func NewStore(path string, opts ...StoreOption) *Store {
	s := &Store{path: path, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Path returns the path the Store was created with.
func (s *Store) Path() string { return s.path }

// Read reads and decodes the export. A missing file gives an error that
// matches fs.ErrNotExist; a file that is not valid JSON gives a
// *SyntaxError and an invalid document a *ValidationError, both naming the
// file.
func (s *Store) Read() (*Document, error) {
	return s.read(s.path)
}

func (s *Store) read(path string) (*Document, error) {
	data, err := readExportFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s%w (no mapping export has been written there yet)", prefix(s.path), fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("%sreading: %w", prefix(s.path), err)
	}
	d, err := Decode(data)
	if err != nil {
		return nil, s.withFile(err)
	}
	return d, nil
}

// withFile puts the Store's path into an error from Decode or Validate.
func (s *Store) withFile(err error) error { return located(s.path, err) }

// located puts the name of the export's file or store into an error from
// Decode or Validate, or prefixes any other error with it.
func located(name string, err error) error {
	var ve *ValidationError
	var se *SyntaxError
	switch {
	case errors.As(err, &ve):
		c := *ve
		c.File = name
		return &c
	case errors.As(err, &se):
		c := *se
		c.File = name
		return &c
	default:
		return fmt.Errorf("%s%w", prefix(name), err)
	}
}

// Update changes the export under a lock and writes it if fn changed it.
//
// It reads the current document; a missing file starts from New(system,
// instance). It refuses a document that belongs to another PSA system, or
// to another instance of the same system (an empty instance in the file is
// filled in; an empty instance argument accepts any). A file that cannot be
// read or decoded is reported and left exactly as it is: Update never
// replaces a document it could not read.
//
// fn may change the document; an error from fn is returned unchanged and
// nothing is written. fn runs with the file locked, so it must be quick and
// must not call Update on the same file (that would deadlock); do PSA
// look-ups before calling Update. When the mappings and settings are unchanged (compared
// ignoring revision and updated_at), nothing is written and no file is
// created. Otherwise Update increments Revision, sets UpdatedAt to the
// current time in UTC (to the second), validates the result and replaces the
// file atomically: a temporary file in the same directory is written,
// synced, given the old file's permissions, and its owner and group as far
// as the writer may (a new file is created with mode 0644 less the umask),
// and renamed over the export, and the directory is synced. Temporary files that a killed
// writer left behind are removed first. The parent directory is
// created if missing. When path is a symbolic link, its target is updated.
//
// Update returns the document as it is now stored.
func (s *Store) Update(system psa.System, instance string, fn func(*Document) error) (*Document, error) {
	path, unlock, err := lockForWrite(s.path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	removeStaleTemps(path)

	old, err := s.read(path)
	exists := err == nil
	switch {
	case errors.Is(err, fs.ErrNotExist):
		old = New(system, instance)
	case err != nil:
		return nil, err
	}
	if old.PSA.System != system {
		return nil, fmt.Errorf("%sthe export belongs to PSA system %q, not %q; use one export file per PSA system", prefix(s.path), old.PSA.System, system)
	}
	if instance != "" && old.PSA.Instance != instance && old.PSA.Instance != "" {
		return nil, fmt.Errorf("%sthe export belongs to %s instance %q, not %q; use one export file per PSA instance", prefix(s.path), system, old.PSA.Instance, instance)
	}

	d := old.Clone()
	if d.PSA.Instance == "" {
		d.PSA.Instance = instance
	}
	if err := fn(d); err != nil {
		return nil, err
	}
	if d.PSA.System != system {
		return nil, fmt.Errorf("%sthe update changed psa.system from %q to %q, which is not allowed", prefix(s.path), system, d.PSA.System)
	}
	if exists && contentEqual(old, d) {
		return d, nil
	}
	if !exists && contentEqual(New(system, instance), d) {
		return d, nil
	}
	d.Revision = old.Revision + 1
	d.UpdatedAt = s.now().UTC().Truncate(time.Second)
	if err := d.Validate(); err != nil {
		return nil, s.withFile(err)
	}
	data, err := d.Encode()
	if err != nil {
		return nil, s.withFile(err)
	}
	if err := writeFile(path, data, ""); err != nil {
		return nil, fmt.Errorf("%swriting: %w", prefix(s.path), err)
	}
	return d, nil
}

// lockForWrite takes the writers' locks of the export file at name (after
// following a symbolic link): the in-process mutex and the advisory lock
// file, creating the parent directory if missing. It returns the path to
// write and the function that releases both locks.
func lockForWrite(name string) (path string, unlock func(), err error) {
	path = name
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	mu := pathMutex(path)
	mu.Lock()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		mu.Unlock()
		return "", nil, fmt.Errorf("%screating directory: %w", prefix(name), err)
	}
	unlockFile, err := lockFile(path + ".lock")
	if err != nil {
		mu.Unlock()
		return "", nil, fmt.Errorf("%slocking: %w", prefix(name), err)
	}
	return path, func() {
		unlockFile()
		mu.Unlock()
	}, nil
}

// pathMutexes holds one mutex per cleaned absolute path, shared by every
// Store in the process. An flock alone is not enough within one process:
// its semantics for two descriptors of one process differ between systems.
var (
	pathMutexesMu sync.Mutex
	pathMutexes   = map[string]*sync.Mutex{}
)

func pathMutex(path string) *sync.Mutex {
	key, err := filepath.Abs(path)
	if err != nil {
		key = filepath.Clean(path)
	}
	pathMutexesMu.Lock()
	defer pathMutexesMu.Unlock()
	mu, ok := pathMutexes[key]
	if !ok {
		mu = new(sync.Mutex)
		pathMutexes[key] = mu
	}
	return mu
}

// tempPattern is the name writeFile gives its temporary file, in the
// export's directory, for os.CreateTemp and filepath.Glob.
func tempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// removeStaleTemps removes the temporary files that writers killed between
// creating and renaming them left beside path. It must run with path locked:
// every writer holds the lock while its temporary file exists, so any such
// file found then belongs to no running writer. A file that cannot be
// removed is left for the next Update; it does no harm but take space.
func removeStaleTemps(path string) {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), tempPattern(path)))
	for _, f := range stale {
		_ = os.Remove(f)
	}
}

// writeFile replaces path with data atomically and durably. The new file
// keeps the mode, and as far as the writer may the owner and group, of the
// one it replaces, so that psa-syncd, when it reads the export as another
// user, can still read it. A new export gets mode 0644 less the umask, as
// any file its writer creates: it names every customer and contract, and a
// umask of 077 keeps it private. A new file beside the export (like, the
// export's path) gets instead the export's group, as far as the writer may,
// and its read bits, whatever the umask: the same readers may read it. One
// replaced gains the export's read bits it lacks (one written 0600 by an
// earlier psa-syncd under a umask of 077), and, when its group had no
// access to it, the export's group too; it loses no bit.
func writeFile(path string, data []byte, like string) (err error) {
	perm := fs.FileMode(0o644)
	old, statErr := os.Stat(path)
	if statErr == nil {
		perm = old.Mode().Perm()
	}
	var model fs.FileInfo
	if like != "" {
		if m, err := os.Stat(like); err == nil {
			model = m
			if statErr != nil {
				perm = 0o600
			}
			perm |= m.Mode().Perm() & 0o044
		}
	}
	dir := filepath.Dir(path)
	// The temporary file is never more open than the export: it is
	// created with the export's mode (less the umask) and given its owner
	// before it holds anything.
	f, err := createTemp(dir, tempPattern(path), perm)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// The write failed and is reported; the temporary file is
			// discarded (one left by a killed writer is removed by the
			// next Store.Update or FileBackend.Save).
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if statErr == nil {
		keepOwner(f, old)
		if model != nil && old.Mode().Perm()&0o070 == 0 && perm&0o040 != 0 {
			// Its group, which had no access, gives it to none of the
			// export's readers; the export's group may give it to them.
			keepGroup(f, model)
		}
	} else if model != nil {
		keepGroup(f, model)
	}
	if statErr == nil || model != nil {
		// The umask may have taken bits from the export's mode.
		if err := f.Chmod(perm); err != nil {
			return err
		}
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return durable.SyncDir(dir)
}

// createTemp creates a new file in dir whose name is pattern with its "*"
// replaced by a random string, as os.CreateTemp does, but with mode perm
// less the umask instead of 0600.
func createTemp(dir, pattern string, perm fs.FileMode) (*os.File, error) {
	prefix, suffix, _ := strings.Cut(pattern, "*")
	for range 10000 {
		name := filepath.Join(dir, prefix+strconv.FormatUint(uint64(rand.Uint32()), 10)+suffix)
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, &fs.PathError{Op: "createtemp", Path: filepath.Join(dir, pattern), Err: fs.ErrExist}
}

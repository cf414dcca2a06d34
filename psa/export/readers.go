package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"
)

// ReadersSuffix names the object (S3) or file beside the export in which
// psa-syncd publishes the export fields it reads (PublishReaders): the
// export's key or path with this suffix, an entry per psa-syncd version
// with when it was last confirmed. A provider newer than psa-syncd reads
// it at plan (LoadReaders) and fails a plan that would write a field a
// recently confirmed entry lacks, which that psa-syncd would refuse at its
// reload, keeping the export it had. psa-syncd as the store says the same in
// ReaderFieldsHeader instead.
const ReadersSuffix = ".readers"

// SiblingStore is implemented by a store that keeps other objects beside
// the export (FileBackend, S3Backend): Sibling returns the Backend of the
// object whose key or path is the export's with suffix.
type SiblingStore interface {
	Sibling(suffix string) Backend
}

// How long the entries of ReadersSuffix count. psa-syncd run confirms its
// entry every ReadersRefresh (a read of the object, and a write when no
// psa-syncd with the same fields confirmed it in the last half of that),
// so a running psa-syncd's entry is at most ReadersRefresh old, plus the
// time its store could not be written. An entry confirmed within
// ReadersFresh is taken to be a psa-syncd that still reads the store: a
// plan that writes a field it does not read fails. An older one is a
// psa-syncd that stopped, was upgraded, or can no longer write the store:
// the plan only warns, naming its age, rather than fail every plan on a
// list nobody maintains. Three days are six missed refreshes, a weekend's
// store outage; a psa-syncd stopped for longer is warned about, not
// enforced. The next write drops entries older than ReadersKept.
const (
	ReadersRefresh = 12 * time.Hour
	ReadersFresh   = 72 * time.Hour
	ReadersKept    = 14 * 24 * time.Hour
)

// Reader is one entry of ReadersSuffix: the fields a psa-syncd build reads,
// with the version of the psa-syncd that last confirmed them and when.
// Every psa-syncd with the same fields shares one entry; two versions
// reading one store (a rolling upgrade) have one each.
type Reader struct {
	Version string   `json:"version,omitempty"`
	Fields  []string `json:"fields"`
	// Confirmed is when a psa-syncd last wrote or confirmed the entry, by
	// its clock; zero for the list of a psa-syncd before entries, which
	// said neither when nor which version.
	Confirmed time.Time `json:"confirmed"`
}

// Age returns how long ago, at now, r was confirmed (0 for a time ahead
// of now: another machine's clock), and false for a list without a time.
func (r Reader) Age(now time.Time) (time.Duration, bool) {
	if r.Confirmed.IsZero() {
		return 0, false
	}
	return max(now.Sub(r.Confirmed), 0), true
}

// Fresh reports whether r was confirmed within ReadersFresh of now.
func (r Reader) Fresh(now time.Time) bool {
	age, dated := r.Age(now)
	return dated && age <= ReadersFresh
}

// readersDoc is what ReadersSuffix holds.
type readersDoc struct {
	Readers []Reader `json:"readers,omitempty"`
	// Fields is the list alone, without a time, of the psa-syncd builds
	// before Readers; one with Readers does not write it.
	Fields []string `json:"fields,omitempty"`
}

// publishAttempts bounds PublishReaders' reads and writes when other
// writers keep winning: each conflict is another psa-syncd's write, whose
// entries the next attempt keeps.
const publishAttempts = 3

// PublishReaders confirms, beside the export in store b, the export fields
// this build reads (ReaderFields) as those of psa-syncd version at now:
// one read, and one conditional write when the object lacks them, or has
// them confirmed more than ReadersRefresh/2 ago, or holds entries to drop
// (older than ReadersKept, or the list of a psa-syncd before entries,
// which has no time). Entries with other fields (another psa-syncd version
// reading the store) are kept. A write another writer made first
// (ErrConflict) is read again and merged, up to publishAttempts times. It
// does nothing for a store without siblings (psa-syncd, which advertises
// its fields in ReaderFieldsHeader).
func PublishReaders(ctx context.Context, b Backend, version string, now time.Time) error {
	s, ok := b.(SiblingStore)
	if !ok {
		return nil
	}
	readers, fields := s.Sibling(ReadersSuffix), ReaderFields()
	now = now.UTC().Truncate(time.Second)
	for range publishAttempts {
		blob, err := readers.Load(ctx, "")
		var doc readersDoc
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return err
		default:
			if json.Unmarshal(blob.Data, &doc) != nil {
				doc = readersDoc{} // garbled: written over
			}
		}
		kept, confirmed := mergeReaders(doc.Readers, version, fields, now)
		if confirmed && len(kept) == len(doc.Readers) && doc.Fields == nil {
			return nil
		}
		data, err := json.Marshal(readersDoc{Readers: kept})
		if err != nil {
			return err
		}
		_, err = readers.Save(ctx, append(data, '\n'), blob.Version)
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return nil // others keep writing: one of them confirms soon enough
}

// mergeReaders returns entries with this build's entry (version, fields)
// confirmed at now and those older than ReadersKept dropped, newest first;
// confirmed says that the entry was already there, of this version,
// confirmed within ReadersRefresh/2 of now, so that nothing needs writing
// unless entries were dropped.
func mergeReaders(entries []Reader, version string, fields []string, now time.Time) (kept []Reader, confirmed bool) {
	kept = []Reader{{Version: version, Fields: fields, Confirmed: now}}
	for _, r := range entries {
		if slices.Equal(r.Fields, fields) {
			age, dated := r.Age(now)
			confirmed = confirmed || dated && age < ReadersRefresh/2 && r.Version == version
			continue
		}
		if age, dated := r.Age(now); dated && age <= ReadersKept && len(r.Fields) > 0 {
			kept = append(kept, r)
		}
	}
	slices.SortStableFunc(kept[1:], func(a, b Reader) int { return b.Confirmed.Compare(a.Confirmed) })
	return kept, confirmed
}

// LoadReaders reads the entries psa-syncd published beside the export in
// store b (PublishReaders), newest first: found is false when b has no
// siblings or holds none (a psa-syncd older than PublishReaders, or one
// that may not write the store), and err is set when the object cannot be
// read or lists no fields. The list of a psa-syncd before entries is one
// Reader without a version or a time.
func LoadReaders(ctx context.Context, b Backend) (entries []Reader, found bool, err error) {
	s, ok := b.(SiblingStore)
	if !ok {
		return nil, false, nil
	}
	readers := s.Sibling(ReadersSuffix)
	blob, err := readers.Load(ctx, "")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var doc readersDoc
	err = json.Unmarshal(blob.Data, &doc)
	if err == nil && len(doc.Readers) == 0 && len(doc.Fields) > 0 {
		doc.Readers = []Reader{{Fields: doc.Fields}}
	}
	if err == nil && (len(doc.Readers) == 0 || slices.ContainsFunc(doc.Readers, func(r Reader) bool { return len(r.Fields) == 0 })) {
		err = errors.New("it lists no field")
	}
	if err != nil {
		return nil, false, fmt.Errorf("export %q: not psa-syncd's list of the export fields it reads: %w", readers.String(), err)
	}
	return doc.Readers, true, nil
}

// Sibling returns the Backend of the file whose path is the export's with
// suffix. A new one gets the export's group and read bits (see writeFile):
// psa-syncd writes it, and whoever reads the export (the CI's plan) reads
// it too, whatever psa-syncd's umask.
func (b *FileBackend) Sibling(suffix string) Backend {
	return &FileBackend{path: b.path + suffix, like: b.path}
}

// Sibling returns the Backend of the object, in the same bucket and with
// the same client, whose key is the export's with suffix. Its writes skip
// the check that the store honours conditional writes
// (checkConditionalWrites), which writes objects of its own: what is kept
// beside the export is whatever its last writer wrote, and psa-syncd, which
// writes it, never writes the export itself.
func (b *S3Backend) Sibling(suffix string) Backend {
	c := *b
	c.key += suffix
	c.uncheckedWrites = true
	base, query, hasQuery := strings.Cut(b.url, "?")
	c.url = base + suffix
	if hasQuery {
		c.url += "?" + query
	}
	return &c
}

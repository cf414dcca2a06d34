package export

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// ReadersSuffix names the object (S3) or file beside the export in which
// psa-syncd publishes the export fields it reads (PublishReaders): the
// export's key or path with this suffix. A provider newer than psa-syncd
// reads it at plan (LoadReaders) and fails a plan that would write a field
// psa-syncd does not read, which psa-syncd would refuse at its reload,
// keeping the export it had. psa-syncd as the store says the same in
// ReaderFieldsHeader instead.
const ReadersSuffix = ".readers"

// SiblingStore is implemented by a store that keeps other objects beside
// the export (FileBackend, S3Backend): Sibling returns the Backend of the
// object whose key or path is the export's with suffix.
type SiblingStore interface {
	Sibling(suffix string) Backend
}

// readersDoc is what ReadersSuffix holds.
type readersDoc struct {
	// Fields are ReaderFields of the psa-syncd that wrote it.
	Fields []string `json:"fields"`
}

// encodeReaders returns the readers object of this build.
func encodeReaders() []byte {
	data, _ := json.Marshal(readersDoc{Fields: ReaderFields()})
	return append(data, '\n')
}

// PublishReaders writes, beside the export in store b, the export fields
// this build reads (ReaderFields), unless the object holds them already:
// one read, and one conditional write when they differ. It does nothing
// for a store without siblings (psa-syncd, which advertises them in
// ReaderFieldsHeader). A write another writer made first (ErrConflict) is
// left: the last of two psa-syncd versions to start wins.
func PublishReaders(ctx context.Context, b Backend) error {
	s, ok := b.(SiblingStore)
	if !ok {
		return nil
	}
	readers, data := s.Sibling(ReadersSuffix), encodeReaders()
	blob, err := readers.Load(ctx, "")
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case bytes.Equal(blob.Data, data):
		return nil
	}
	if _, err := readers.Save(ctx, data, blob.Version); err != nil && !errors.Is(err, ErrConflict) {
		return err
	}
	return nil
}

// LoadReaders reads the export fields that psa-syncd published beside the
// export in store b (PublishReaders): found is false when b has no
// siblings or holds none (a psa-syncd older than PublishReaders, or one
// that may not write the store), and err is set when the object cannot be
// read or is not a list of fields.
func LoadReaders(ctx context.Context, b Backend) (fields []string, found bool, err error) {
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
	if err := json.Unmarshal(blob.Data, &doc); err != nil || len(doc.Fields) == 0 {
		if err == nil {
			err = errors.New("it lists no field")
		}
		return nil, false, fmt.Errorf("export %q: not psa-syncd's list of the export fields it reads: %w", readers.String(), err)
	}
	return doc.Fields, true, nil
}

// Sibling returns the Backend of the file whose path is the export's with
// suffix.
func (b *FileBackend) Sibling(suffix string) Backend { return NewFileBackend(b.path + suffix) }

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

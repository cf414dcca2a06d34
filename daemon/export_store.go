package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/schedule"
)

// exportLoadTimeout bounds one read of the export from S3 or another
// psa-syncd.
const exportLoadTimeout = time.Minute

// CheckExport decodes and validates an export and checks it against the
// config and the PSA connection: its psa.system must be the config's, and
// its psa.instance the connection's instance when both are known (instance
// is the backend's Instance, "" when it is not known yet; they are compared
// with export.SameInstance, so for Autotask the tenant's CI decides, not
// the zone host that many tenants share). Its integration
// schedule and time zone must parse, and every company_id, contract_id and
// service_id must be spelled as the PSA writes ids (Document.CheckIDs):
// the backends read "029684183" as contract 29684183 but key the lines
// they read by "29684183", so a pass would post the whole quantity again
// on every run. Errors name the entry and field.
func CheckExport(cfg *Config, data []byte, instance string) (*export.Document, error) {
	doc, err := export.Decode(data)
	if err != nil {
		return nil, err
	}
	if doc.PSA.System != cfg.PSA.System {
		return nil, fmt.Errorf("psa.system: the export is for %q but psa-syncd is configured for %q", doc.PSA.System, cfg.PSA.System)
	}
	if err := doc.CheckIDs(); err != nil {
		return nil, err
	}
	if instance != "" && doc.PSA.Instance != "" && !export.SameInstance(doc.PSA.Instance, instance) {
		return nil, fmt.Errorf("psa.instance: the export is for %s instance %q but psa-syncd is connected to %q; "+
			"an export belongs to one PSA instance: point psa-syncd at that instance's export, or apply the Terraform "+
			"configuration of this instance", cfg.PSA.System, doc.PSA.Instance, instance)
	}
	if in := doc.Integration; in != nil {
		if in.Schedule != "" {
			if _, err := schedule.Parse(in.Schedule); err != nil {
				return nil, fmt.Errorf("integration.schedule: %w", err)
			}
		}
		if _, err := schedule.LoadLocation(in.Timezone); err != nil {
			return nil, fmt.Errorf("integration.timezone: %w", err)
		}
	}
	return doc, nil
}

// reloadRemoteExportLocked reads the export from S3 or another psa-syncd,
// asking only for a version other than the one last examined (unless force
// is set), and uses it when it is valid.
func (d *Daemon) reloadRemoteExportLocked(cfg *Config, force bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), exportLoadTimeout)
	defer cancel()
	if d.remote.backend == nil || d.remote.url != cfg.ExportURL {
		b, err := cfg.OpenExportBackend(ctx, d.baseClient, d.logger)
		if err != nil {
			return d.failedKeepingExport(cfg, err)
		}
		d.remote.url, d.remote.backend, d.remote.version, d.remote.loaded, d.remote.kept = cfg.ExportURL, b, "", "", ""
	}
	ifNoneMatch := d.remote.version
	if force {
		ifNoneMatch = ""
	}
	blob, err := d.remote.backend.Load(ctx, ifNoneMatch)
	if err == nil && blob.Version == "" {
		// A store that gives no version (a proxy in front of another
		// psa-syncd that drops its ETag): the content's digest stands
		// for it, so that an export seen before is not loaded, kept or
		// rejected and logged again at every poll. Sent back as
		// If-None-Match, it matches nothing, and the full answer is
		// compared below.
		blob.Version = export.Digest(blob.Data)
	}
	if err == nil && ifNoneMatch != "" && blob.Version == ifNoneMatch {
		// A store that ignores If-None-Match (or a proxy in front of it)
		// answers in full with the version it gave before: unchanged.
		err = export.ErrNotModified
	}
	if errors.Is(err, export.ErrNotModified) {
		// The store answers again. When the version it still holds is the
		// one in use, the failed polls before were the store's outage, not
		// the export's: the reload is good again. A version that was
		// rejected stays rejected until the store holds another.
		if d.remote.lastErr != "" {
			d.remote.lastErr = ""
			if d.remote.version == d.remote.loaded {
				d.logger.Info("Mapping export store reachable again; the export in use is its current version", "store", cfg.ExportName())
				d.metrics.ExportReloadRecovered()
				d.exportErr.Store(nil)
			}
		}
		return nil
	}
	if err != nil {
		// A store that stays unreachable is logged once, not at every poll;
		// the reload metric records every failure. Errors are compared
		// without what changes with every request (a proxy's or WAF's
		// request id in its 403 page).
		if !force && usage.RefusalKey(err.Error()) == d.remote.lastErr {
			d.metrics.ExportReloaded(false, d.now())
			return err
		}
		d.remote.lastErr = usage.RefusalKey(err.Error())
		return d.failedKeepingExport(cfg, err)
	}
	d.remote.lastErr = ""
	d.remote.version = blob.Version
	doc, err := d.checkExport(cfg, blob.Data)
	if err != nil {
		return d.failedKeepingExport(cfg, err)
	}
	d.useExport(cfg, doc, blob.Version, blob.Data)
	d.remote.loaded = blob.Version
	d.keepExportLocked(cfg, blob)
	return nil
}

// publishReadersLocked confirms, beside the export in a file or S3 store,
// the export fields this psa-syncd reads, with its version and the time
// (export.PublishReaders: one read, and a write when its entry is missing
// or half a refresh old), after its first reload from a store, whether the
// export loaded or not (one this psa-syncd refused is when they matter),
// and again at the first reload export.ReadersRefresh later: a few
// requests a day, not one per poll. A provider newer than psa-syncd reads
// them at plan, and fails a plan that would write a field this psa-syncd
// does not read, which its reload would refuse; an entry no psa-syncd has
// confirmed for export.ReadersFresh (one that stopped, or can no longer
// write) only warns. psa-syncd may read a store it may not write (a
// read-only mount or credentials): that is logged at info, and the
// provider's plan then checks nothing. psa-syncd as the store (self,
// another psa-syncd) advertises them in its answers instead. Only
// psa-syncd run publishes (see Options.PublishExportFields).
func (d *Daemon) publishReadersLocked(cfg *Config) {
	if !d.publishFields {
		return
	}
	var b export.Backend
	switch cfg.ExportStore() {
	case StoreFile:
		if _, err := os.Stat(filepath.Dir(cfg.ExportPath)); errors.Is(err, fs.ErrNotExist) {
			// Not created by psa-syncd, as its user and umask: the
			// export's writer (the CI's apply) makes it, with the owner
			// and mode its readers need; the next reload tries again.
			return
		}
		b = export.NewFileBackend(cfg.ExportPath)
	case StoreS3:
		if d.remote.url != cfg.ExportURL || d.remote.backend == nil {
			return // not opened: the next reload tries again
		}
		b = d.remote.backend
	default:
		return
	}
	now := d.now()
	if d.readersFor == cfg.ExportName() && now.Sub(d.readersAt) < export.ReadersRefresh {
		return
	}
	d.readersFor, d.readersAt = cfg.ExportName(), now
	ctx, cancel := context.WithTimeout(context.Background(), exportLoadTimeout)
	defer cancel()
	if err := export.PublishReaders(ctx, b, d.version, now); err != nil {
		d.logger.Info("Could not write the export fields this psa-syncd reads beside the mapping export; a newer provider's plan "+
			"cannot check its export against them", "store", cfg.ExportName(), "suffix", export.ReadersSuffix, "err", err)
	}
}

// storeKey identifies the export's store in the state database: a digest
// of its URL, which may hold credentials (an S3 endpoint's password), or
// of "file:" and the export file's path (a path never starts with a
// URL's scheme: Config.validateExport refuses it).
func storeKey(cfg *Config) string {
	name := cfg.ExportURL
	if cfg.ExportStore() == StoreFile {
		name = "file:" + cfg.ExportPath
	}
	sum := sha256.Sum256([]byte("psa-syncd export store\x00" + name))
	return hex.EncodeToString(sum[:])
}

// keepExportLocked keeps the export just loaded from a file, S3 or another
// psa-syncd in the state database, once per version, for a restart while
// the store cannot be read or holds an export psa-syncd rejects. A failure
// to keep it is logged; the export is in use.
func (d *Daemon) keepExportLocked(cfg *Config, blob export.Blob) {
	if blob.Version != "" && blob.Version == d.remote.kept {
		return
	}
	err := d.db.PutRemoteExport(state.RemoteExport{Store: storeKey(cfg), Version: blob.Version, At: d.exp.Load().loaded.UTC(), Body: blob.Data})
	if err != nil {
		d.logger.Warn("Could not keep the mapping export in the state database; a restart while the store cannot be read would start without one",
			"store", cfg.ExportName(), "err", err)
		return
	}
	d.remote.kept = blob.Version
}

// failedKeepingExport records a failure to read or use the export of a
// file, S3, another psa-syncd or psa-syncd itself (see exportFailed). When
// no export is in use yet, as after a restart, it then uses the last good
// one the state database keeps for the store: the one this psa-syncd was
// using before, which it would have kept using through the same failure
// had it not restarted (so a month-end pass is not skipped because the
// store was down at the wrong moment). The reload stays failed
// (psa_sync_export_last_reload_successful 0) until the store answers, and
// its success timestamp is when the kept export was read, and the store's
// error is still returned. The kept export is checked again, against this
// config and PSA.
func (d *Daemon) failedKeepingExport(cfg *Config, cause error) error {
	err := d.exportFailed(cfg, cause)
	if d.exp.Load() != nil {
		return err
	}
	var (
		kept state.RemoteExport
		doc  *export.Document
	)
	if cfg.ExportStore() == StoreSelf {
		kept, doc = d.lastGoodSelfExport(cfg)
	} else {
		kept, doc = d.lastKeptExport(cfg)
	}
	if doc == nil {
		return err
	}
	failure := d.exportErr.Load()
	d.useExport(cfg, doc, kept.Version, kept.Body)
	d.exportErr.Store(failure)               // the store is still not read
	d.metrics.ExportReloaded(true, kept.At)  // the export in use was read then
	d.metrics.ExportReloaded(false, d.now()) // and the store is still not read
	if cfg.ExportStore() == StoreSelf {
		d.logger.Warn("Using the newest stored mapping export this psa-syncd accepts until a newer one is stored",
			"store", cfg.ExportName(), "revision", doc.Revision, "version", kept.Version, "stored_at", kept.At)
		return err
	}
	if cfg.ExportStore() != StoreFile && d.remote.version == "" {
		// Nothing read from the store yet (it cannot be read): a poll
		// that finds it still holding the kept version makes the reload
		// good again. A version it did give, and that was rejected, stays
		// the one examined, so that the polls after it ask for another
		// and do not read and log the same rejection again every time.
		d.remote.version = kept.Version
	}
	d.remote.loaded, d.remote.kept = kept.Version, kept.Version
	d.logger.Warn("Using the last good mapping export kept in the state database until the store can be read",
		"store", cfg.ExportName(), "revision", doc.Revision, "version", kept.Version, "read_at", kept.At)
	return err
}

// lastKeptExport is the last good export of a file, S3 or another
// psa-syncd kept in the state database (keepExportLocked), checked again,
// or a nil document when there is none to use.
func (d *Daemon) lastKeptExport(cfg *Config) (state.RemoteExport, *export.Document) {
	kept, err := d.db.LastRemoteExport(storeKey(cfg))
	if errors.Is(err, state.ErrNoExport) {
		return state.RemoteExport{}, nil
	}
	if err != nil {
		d.logger.Warn("Could not read the last good mapping export kept in the state database", "store", cfg.ExportName(), "err", err)
		return state.RemoteExport{}, nil
	}
	doc, err := d.checkExport(cfg, kept.Body)
	if err != nil {
		d.logger.Warn("The last good mapping export kept in the state database no longer passes the checks; not using it",
			"store", cfg.ExportName(), "err", err)
		return state.RemoteExport{}, nil
	}
	return kept, doc
}

// lastGoodSelfExport is, with export_url: self, the newest stored export
// older than the current revision that this psa-syncd accepts, or a nil
// document when none does. The state database holds every revision (the
// newest state.export_bodies_kept with their body), so no copy is kept: a
// copy of the last export used would not do, as the database is shared.
// A newer psa-syncd sharing it (a rolling upgrade) stores and uses a
// revision with a field this one does not read, and one rolled back finds
// the revision its newer self used: the older revision it was using is
// the one it goes on with, as it would have without a restart.
func (d *Daemon) lastGoodSelfExport(cfg *Config) (state.RemoteExport, *export.Document) {
	for rev := d.selfRevision; ; {
		v, body, err := d.db.PreviousExport(rev)
		if errors.Is(err, state.ErrNoExport) {
			return state.RemoteExport{}, nil
		}
		if err != nil {
			d.logger.Warn("Could not read an older mapping export from the state database", "store", cfg.ExportName(), "err", err)
			return state.RemoteExport{}, nil
		}
		if doc, err := d.checkExport(cfg, body); err == nil {
			return state.RemoteExport{Version: revisionETag(v.Revision), At: v.At, Body: body}, doc
		}
		rev = v.Revision
	}
}

// reloadSelfExportLocked uses the newest export stored in the state
// database, when psa-syncd is the export store.
func (d *Daemon) reloadSelfExportLocked(cfg *Config) error {
	v, data, err := d.db.CurrentExport()
	if err == nil {
		d.selfRevision = v.Revision
	}
	if errors.Is(err, state.ErrNoExport) {
		err := fmt.Errorf("%w: no export has been written to PUT %s yet", fs.ErrNotExist, export.ExportAPIPath)
		if d.exp.Load() == nil {
			// The state of every new installation until its first
			// terraform apply, which /-/ready answers as Ready to
			// receive: nothing an operator must fix, so not an error
			// in the log (the metrics and the status page still say
			// that no export is loaded).
			d.logger.Info("Waiting for the first mapping export: terraform apply writes it to PUT "+export.ExportAPIPath, "store", cfg.ExportName())
			return d.exportFailedQuietly(cfg, err)
		}
		return d.exportFailed(cfg, err)
	}
	if err != nil {
		return d.exportFailed(cfg, err)
	}
	doc, err := d.checkExport(cfg, data)
	if err != nil {
		// The newest revision is rejected (stored by a newer psa-syncd
		// sharing the database): after a restart, the newest one before
		// it that passes is used.
		return d.failedKeepingExport(cfg, err)
	}
	d.useExport(cfg, doc, revisionETag(v.Revision), data)
	return nil
}

// reloadNewerSelfExportLocked loads the newest export stored in the state
// database when it is not the one last examined: another psa-syncd sharing
// the database (PostgreSQL) stored it. The state database is then the
// export's store, and a failure to read it (PostgreSQL refusing the role,
// down, unreachable) is the store's, as S3's would be: it is logged once,
// not at every poll, the reload metric and the status page say the export
// is failing, and the store answering again is logged; the export in use
// stays. Before, such a failure was neither logged nor in the metric, and a
// newer export another psa-syncd stored went unnoticed.
func (d *Daemon) reloadNewerSelfExportLocked(cfg *Config) error {
	newest, err := d.db.ExportHistory(1)
	if err != nil {
		key := usage.RefusalKey(err.Error())
		if key == d.self.lastErr {
			d.metrics.ExportReloaded(false, d.now())
			return err
		}
		if d.self.lastErr == "" {
			// What the status said before: the failure of the newest
			// revision, or nothing. The store answering again with the
			// same newest revision says it again.
			d.self.before = d.exportErr.Load()
		}
		d.self.lastErr = key
		return d.exportFailed(cfg, fmt.Errorf("reading the newest export from the state database: %w", err))
	}
	same := len(newest) == 0 || newest[0].Revision == d.selfRevision
	if d.self.lastErr != "" {
		d.self.lastErr = ""
		if same {
			d.exportErr.Store(d.self.before)
			if d.self.before == nil {
				d.metrics.ExportReloadRecovered()
				d.logger.Info("Mapping export store reachable again; the export in use is its current version", "store", cfg.ExportName())
			}
		}
		d.self.before = nil
	}
	if same {
		return nil
	}
	return d.reloadSelfExportLocked(cfg)
}

// revisionETag is the ETag of a revision of the export stored in psa-syncd.
func revisionETag(rev int64) string { return strconv.Quote(strconv.FormatInt(rev, 10)) }

// errPrecondition is a PUT whose If-Match or If-None-Match does not hold.
var errPrecondition = errors.New("the export changed since it was read")

// invalidExportError is a PUT whose export does not pass the checks, as
// against one the state database failed to store.
type invalidExportError struct{ err error }

func (e *invalidExportError) Error() string { return e.err.Error() }
func (e *invalidExportError) Unwrap() error { return e.err }

// putExport stores a new export version when psa-syncd is the store and
// uses it at once. ifMatch is the ETag the change is based on, or "" with
// create set for the first export. A bad export is refused with the reason
// (the last good one stays in use); a lost race returns errPrecondition.
func (d *Daemon) putExport(data []byte, ifMatch string, create bool, source string) (state.ExportVersion, *export.Document, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	cfg := d.cfg.Load()
	cur, _, err := d.db.CurrentExport()
	exists := err == nil
	switch {
	case err != nil && !errors.Is(err, state.ErrNoExport):
		return state.ExportVersion{}, nil, err
	case create && exists:
		return state.ExportVersion{}, nil, fmt.Errorf("%w: an export exists already (revision %d)", errPrecondition, cur.Revision)
	case !create && !exists:
		return state.ExportVersion{}, nil, fmt.Errorf("%w: no export is stored yet; send If-None-Match: * to create it", errPrecondition)
	case !create && ifMatch != revisionETag(cur.Revision):
		return state.ExportVersion{}, nil, fmt.Errorf("%w: If-Match is %s but the current export is %s", errPrecondition, ifMatch, revisionETag(cur.Revision))
	}
	doc, err := d.checkExport(cfg, data)
	if err != nil {
		return state.ExportVersion{}, nil, &invalidExportError{d.exportFailed(cfg, err)}
	}
	v := state.ExportVersion{
		Revision: cur.Revision + 1,
		Digest:   export.Digest(data),
		Size:     int64(len(data)),
		At:       d.now().UTC(),
		Source:   source,
	}
	if err := d.db.PutExport(v, data); errors.Is(err, state.ErrConflict) {
		return state.ExportVersion{}, nil, fmt.Errorf("%w: %w", errPrecondition, err)
	} else if err != nil {
		return state.ExportVersion{}, nil, err
	}
	d.useExport(cfg, doc, revisionETag(v.Revision), data)
	d.selfRevision = v.Revision
	return v, doc, nil
}

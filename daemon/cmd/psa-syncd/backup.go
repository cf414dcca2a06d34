package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/internal/durable"
)

func cmdBackup(ctx context.Context, e *env, args []string) int {
	var (
		cf  commonFlags
		rf  remoteFlags
		out string
	)
	fs := newFlagSet(e, "backup", "Write a consistent copy of the SQLite state database (statuses, runs, intents, ledger,\n"+
		"export history) to a new file. While the daemon runs it holds the database's lock: ask it\n"+
		"with -web.url. Without it, only state_dir and the state section of the config file are read\n"+
		"(no other secret), so that it runs by hand while psa-syncd is stopped. To restore, stop\n"+
		"psa-syncd, remove psa-syncd.db-wal and psa-syncd.db-shm in the state directory and put the\n"+
		"copy in place of psa-syncd.db, mode 0600, owned by the state directory's owner (psa-syncd's\n"+
		"user). Started on the copy, psa-syncd\n"+
		"refuses Kaseya BMS usage passes and ticket passes that write until it is started once with\n"+
		"-state.allow-restore, after checking what it wrote since the backup (README: Backup and\n"+
		"restore). A PostgreSQL state database is backed up with pg_dump (or the managed service's\n"+
		"backups) instead.")
	cf.register(fs)
	fs.StringVar(&out, "output", "", "The backup `file` to write; it must not exist.")
	fs.StringVar(&rf.url, "web.url", "", "Base `URL` of a running psa-syncd to ask for the copy; needs its API token.")
	fs.StringVar(&rf.tokenFile, "web.token-file", "", "The `file` holding the API token for -web.url; default: the PSA_SYNCD_API_TOKEN environment variable.")
	rf.tls.register(fs)
	rf.fs = fs
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	if out == "" {
		fmt.Fprintln(e.stderr, "psa-syncd: -output is required: the backup file to write")
		return 2
	}
	// The same checks of -web.url and -web.token-file, and the same exit
	// code, as every other command that can ask a running daemon.
	api, err := rf.client(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	if _, err := os.Lstat(out); err == nil {
		fmt.Fprintf(e.stderr, "psa-syncd: -output %s exists; give a new file\n", out)
		return 1
	}
	if api != nil {
		err = backupRemote(ctx, api, out)
	} else {
		err = backupLocal(ctx, e, cf.configFile, out)
	}
	if err != nil {
		return requestFailed(e, err)
	}
	fmt.Fprintf(e.stdout, "Wrote a backup of the state database to %s.\n", out)
	return 0
}

func backupLocal(ctx context.Context, e *env, configFile, out string) error {
	// Not Load: a backup while psa-syncd is stopped is run by hand,
	// where the service's other secrets may not be readable.
	cfg, err := daemon.LoadState(configFile, e.getenv)
	if err != nil {
		return err
	}
	scfg := cfg.State.Database(cfg.StateDir)
	if scfg.Driver == state.DriverPostgres {
		// Refused before connecting: opening would migrate the schema.
		return state.ErrBackupUnsupported
	}
	// A backup never creates, imports or migrates: a missing database is
	// a wrong state_dir or a lost file, not a new empty one to copy.
	scfg.Existing = true
	db, err := state.OpenConfig(ctx, scfg)
	if err != nil {
		if hint := lockedHint(cfg, "backup", err); hint != "" {
			return fmt.Errorf("%w\npsa-syncd: %s", err, hint)
		}
		return err
	}
	return errors.Join(backupInto(db, out), db.Close())
}

// backupInto writes a backup of db into out through a temporary directory
// beside it, as backupRemote does through a temporary file, so that a
// backup killed midway (a cron job's timeout, a reboot) leaves nothing
// named out: only a .psa-syncd-backup-* directory, removed otherwise.
func backupInto(db *state.DB, out string) error {
	dir, err := os.MkdirTemp(filepath.Dir(out), ".psa-syncd-backup-")
	if err != nil {
		return fmt.Errorf("-output %s: %w", out, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, state.FileName)
	if err := db.Backup(tmp); err != nil {
		return fmt.Errorf("-output %s: %w", out, err)
	}
	return publish(tmp, out)
}

// backupRemote downloads a backup from a running daemon into out, through
// a temporary file so that a broken transfer leaves nothing named out.
func backupRemote(ctx context.Context, api *apiClient, out string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api.base+"/api/v1/backup", nil)
	if err != nil {
		return err
	}
	setToken(req, api.token)
	resp, err := api.do(req, 30*time.Minute)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return doJSONError(req, resp)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".psa-syncd-backup-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, resp.Body)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("GET %s: %w", req.URL.Redacted(), err)
	}
	return publish(tmp.Name(), out)
}

// link is os.Link; tests replace it to play a file system without hard
// links.
var link = os.Link

// publish gives the complete backup tmp its name out, refusing to replace
// a file of that name: a hard link refuses one that appeared meanwhile.
// A file system without hard links (a CIFS share without Unix extensions,
// vfat, some FUSE mounts: where backups are often sent) gets a rename
// after a check that out does not exist. The name is then synced to disk,
// as the backup's content was, so that a crash right after the command
// reported the backup written does not lose it.
func publish(tmp, out string) error {
	err := link(tmp, out)
	if errors.Is(err, os.ErrExist) {
		return err
	}
	if err != nil {
		if _, serr := os.Lstat(out); serr == nil {
			return &os.LinkError{Op: "rename", Old: tmp, New: out, Err: os.ErrExist}
		} else if !errors.Is(serr, os.ErrNotExist) {
			return serr
		}
		if rerr := os.Rename(tmp, out); rerr != nil {
			return fmt.Errorf("%w; renaming instead: %w", err, rerr)
		}
	}
	if err := durable.SyncDir(filepath.Dir(out)); err != nil {
		return fmt.Errorf("%s was written, but syncing its directory failed (a crash now could lose it): %w", out, err)
	}
	return nil
}

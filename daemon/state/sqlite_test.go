package state

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func TestOpen_createsDirectoryAndFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "var", "lib", "psa-syncd")
	db, err := Open(dir)
	if err != nil {
		t.Fatalf("Open returned error: %v", err)
	}
	defer closeDB(t, db)
	if want := filepath.Join(dir, FileName); db.Path() != want {
		t.Errorf("Path = %q, want %q", db.Path(), want)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("state directory mode = %o, want 700", perm)
	}
	for _, f := range []string{db.Path(), db.Path() + "-wal"} {
		fi, err := os.Stat(f)
		if errors.Is(err, os.ErrNotExist) && strings.HasSuffix(f, "-wal") {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s mode = %o, want no group or other access", f, perm)
		}
	}
	if _, err := os.Stat(db.Path() + ".creating"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestOpen_filePath(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "sub", "custom.db")
	db, err := Open(file)
	if err != nil {
		t.Fatalf("Open returned error: %v", err)
	}
	defer closeDB(t, db)
	if db.Path() != file {
		t.Errorf("Path = %q, want %q", db.Path(), file)
	}
}

func TestOpen_emptyPathAndUnknownDriver(t *testing.T) {
	t.Parallel()
	if _, err := Open(""); err == nil {
		t.Error(`Open("") returned nil error`)
	}
	_, err := OpenConfig(t.Context(), Config{Driver: "mysql", Path: t.TempDir()})
	if want := `state: unknown driver "mysql" (want sqlite or postgres)`; err == nil || err.Error() != want {
		t.Errorf("OpenConfig(mysql) = %v, want %q", err, want)
	}
}

func TestOpen_lockedBySecondOpener(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatalf("Open returned error: %v", err)
	}
	defer closeDB(t, db)

	// SQLite's locks belong to a connection, so a second Open in this
	// process is refused exactly as one from another process is.
	start := time.Now()
	second, err := Open(dir)
	if err == nil {
		closeDB(t, second)
		t.Fatal("second Open returned nil error")
	}
	want := fmt.Sprintf("state: state database %q is locked by another psa-syncd process", filepath.Join(dir, FileName))
	if err.Error() != want {
		t.Errorf("second Open error = %q, want %q", err, want)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second Open took %v, want about %v", d, lockTimeout)
	}
	// The first holder still works, and once it closes the database opens
	// again.
	if _, err := db.BeginRun(Run{Trigger: "cli"}); err != nil {
		t.Fatalf("BeginRun after a refused second Open: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close returned error: %v", err)
	}
	closeDB(t, again)
}

// goodFile returns the bytes of a closed database holding some state.
func goodFile(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		if _, err := db.BeginRun(Run{Trigger: "schedule", Started: t0, Error: strings.Repeat("x", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return good
}

func TestOpen_damagedFileRefusedAndLeftUntouched(t *testing.T) {
	t.Parallel()
	good := goodFile(t)
	if len(good) < 8*4096 {
		t.Fatalf("test database is only %d bytes", len(good))
	}
	flipped := append([]byte{}, good...)
	for i := 2 * 4096; i < 3*4096; i++ {
		flipped[i] ^= 0x5a
	}
	walOff := append([]byte{}, good...)
	walOff[18], walOff[19] = 1, 1

	corruptPrefix := "state: state database %q is corrupt or not a psa-syncd database ("
	for name, tc := range map[string]struct {
		data []byte
		want string // format with the file name; a prefix
	}{
		"empty":         {nil, "state: state database %q is empty (0 bytes)"},
		"text":          {[]byte(strings.Repeat("this is not a database\n", 1000)), corruptPrefix},
		"short":         {[]byte("hello"), corruptPrefix},
		"headerOnly":    {good[:50], corruptPrefix},
		"truncated4k":   {good[:4096], corruptPrefix},
		"truncatedHalf": {good[:len(good)/2], corruptPrefix},
		"truncated2_3":  {good[:len(good)*2/3], corruptPrefix},
		"flippedPage":   {flipped, corruptPrefix},
		"notWAL":        {walOff, corruptPrefix},
		"zeroedHeader":  {append(make([]byte, 100), good[100:]...), corruptPrefix},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			file := filepath.Join(dir, FileName)
			if err := os.WriteFile(file, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := Open(dir)
			if err == nil {
				closeDB(t, db)
				t.Fatal("Open returned nil error for a damaged file")
			}
			if want := fmt.Sprintf(tc.want, file); !strings.HasPrefix(err.Error(), want) ||
				!strings.Contains(err.Error(), "left untouched") || !strings.Contains(err.Error(), "backup") {
				t.Errorf("Open error = %q, want it to start with %q and say the file was left untouched and how to recover", err, want)
			}
			got, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.data) {
				t.Error("Open modified the damaged file")
			}
		})
	}
}

func TestOpen_truncatedWithStaleWALRefused(t *testing.T) {
	t.Parallel()
	good := goodFile(t)
	dir := t.TempDir()
	file := filepath.Join(dir, FileName)
	data := good[:len(good)/2]
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// A WAL that is not this database's: SQLite ignores it, so the
	// truncation is found by quick_check instead of the header.
	if err := os.WriteFile(file+"-wal", bytes.Repeat([]byte{0x37}, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir)
	if err == nil {
		closeDB(t, db)
		t.Fatal("Open returned nil error for a truncated file with a WAL beside it")
	}
	if !strings.Contains(err.Error(), "is corrupt or not a psa-syncd database") {
		t.Errorf("Open error = %v, want a corrupt error", err)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, data) {
		t.Error("Open modified the truncated file")
	}
}

func TestOpen_foreignSQLiteRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "other.db")
	db, err := Open(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.sql.Exec(`DROP TABLE schema_migrations`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(file)
	if err == nil || !strings.Contains(err.Error(), "no psa-syncd schema") {
		t.Errorf("Open of an SQLite database without psa-syncd's schema = %v, want a 'no psa-syncd schema' error", err)
	}
}

// fixtureState is what testdata/bbolt-v1.db holds. The file was written by
// the bbolt state package of commit b4a41d9, the last one with it.
func checkFixtureState(t *testing.T, db *DB) {
	t.Helper()
	day := time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)
	cs, err := db.CustomerStatuses()
	if err != nil || len(cs) != 2 || cs[0].CustomerID != "cust-a" || cs[1].Hint != "check contract 29684184 in Kaseya BMS" ||
		!cs[1].TicketSync || !cs[0].LastSuccess.Equal(t0) {
		t.Errorf("CustomerStatuses = %+v, %v; want cust-a and cust-b as stored", cs, err)
	}
	runs, err := db.Runs(0)
	if err != nil || len(runs) != 3 || runs[0].ID != 3 || runs[0].Result != RunRunning || runs[1].Error != "hourly budget nearly used" ||
		!runs[1].DryRun || runs[2].Requests != 12 || !runs[2].Finished.Equal(t0.Add(90*time.Second)) {
		t.Errorf("Runs = %+v, %v; want the three runs as stored", runs, err)
	}
	open, err := db.OpenIntents()
	want := []Intent{{ID: 6, RunID: 3, System: psa.SystemKaseyaBMS, Source: "file", CustomerID: "cust-a", ContractID: "29684184",
		ServiceID: "30000012", After: 9, EffectiveDate: day, Created: t0.Add(2*time.Hour + time.Second), State: IntentOpen}}
	if err != nil || !cmp.Equal(open, want) {
		t.Errorf("OpenIntents = %v (-want +got):\n%s", err, cmp.Diff(want, open))
	}
	ledger, err := db.Ledger(0)
	if err != nil || len(ledger) != 3 {
		t.Fatalf("Ledger = %+v, %v; want 3 entries", ledger, err)
	}
	last, ok, err := db.LastSet("29684183", "30000012")
	wantLast := LedgerEntry{Seq: 3, RunID: 1, System: psa.SystemKaseyaBMS, Source: "file", CustomerID: "cust-a",
		ContractID: "29684183", ServiceID: "30000012", Before: 40, After: 42, EffectiveDate: day, Time: t0.Add(6 * time.Second), IntentID: 3}
	if err != nil || !ok || !cmp.Equal(last, wantLast) {
		t.Errorf("LastSet = %v, %v (-want +got):\n%s", ok, err, cmp.Diff(wantLast, last))
	}
	// Closed intents keep their state: the failed one writes no ledger
	// entry and a new intent continues the numbering.
	if err := db.CompleteIntent(4, IntentDone, "", t0); err == nil || !strings.Contains(err.Error(), "already failed") {
		t.Errorf("CompleteIntent(4) = %v, want 'already failed'", err)
	}
	in, err := db.OpenIntent(testIntent())
	if err != nil || in.ID != 7 {
		t.Errorf("OpenIntent after the import = id %d, %v; want 7", in.ID, err)
	}
	r, err := db.BeginRun(Run{Trigger: "cli"})
	if err != nil || r.ID != 4 {
		t.Errorf("BeginRun after the import = id %d, %v; want 4", r.ID, err)
	}
}

func TestOpen_importsBboltStateOnce(t *testing.T) {
	t.Parallel()
	orig, err := os.ReadFile("testdata/bbolt-v1.db")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, FileName)
	if err := os.WriteFile(file, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir)
	if err != nil {
		t.Fatalf("Open of a bbolt state file: %v", err)
	}
	checkFixtureState(t, db)
	closeDB(t, db)

	backup, err := os.ReadFile(boltBackupName(file))
	if err != nil || !bytes.Equal(backup, orig) {
		t.Errorf("bbolt backup %s: %v; want the original file, unchanged", boltBackupName(file), err)
	}
	if kind, err := inspectFile(file); err != nil || kind != fileSQLite {
		t.Errorf("after the import %s is kind %d, %v; want SQLite", file, kind, err)
	}
	// Reopening does not import again: the run begun above is still there.
	db, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, db)
	if runs, err := db.Runs(0); err != nil || len(runs) != 4 {
		t.Errorf("Runs after reopening = %d, %v; want 4", len(runs), err)
	}
}

// TestReadBolt_largeFileNotReadWhole: the import hashes the bbolt file a
// piece at a time and reads its records through bbolt's memory map. bbolt
// never shrinks its file, so an old state file can be far larger than its
// records; before, the whole file was read into memory for its digest
// alone. Not parallel: it measures the allocations of readBolt alone.
func TestReadBolt_largeFileNotReadWhole(t *testing.T) {
	orig, err := os.ReadFile("testdata/bbolt-v1.db")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(file, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20 // sparse: free pages at the end, as bbolt leaves them
	if err := os.Truncate(file, size); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	data, digest, err := readBolt(file)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("readBolt of a bbolt file with free space at its end: %v", err)
	}
	if len(data.customers) != 2 || len(data.ledger) != 3 || len(digest) != 64 {
		t.Errorf("readBolt = %d customers, %d ledger entries, digest %q; want 2, 3 and a SHA-256", len(data.customers), len(data.ledger), digest)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > size/4 {
		t.Errorf("readBolt of a %d MiB bbolt file allocated %d MiB; want it not read into memory", size>>20, n>>20)
	}
}

func TestOpen_damagedBboltRefused(t *testing.T) {
	t.Parallel()
	orig, err := os.ReadFile("testdata/bbolt-v1.db")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, FileName)
	damaged := append(append([]byte{}, orig[:2*4096]...), make([]byte, len(orig)-2*4096)...)
	if err := os.WriteFile(file, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	if err == nil || !strings.Contains(err.Error(), "is corrupt or not a psa-syncd database") {
		t.Errorf("Open of a damaged bbolt file = %v, want a corrupt error", err)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, damaged) {
		t.Error("Open modified the damaged bbolt file")
	}
}

func TestBackup_consistentCopyWhileOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, db)
	in, err := db.OpenIntent(testIntent())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CompleteIntent(in.ID, IntentDone, "", t0); err != nil {
		t.Fatal(err)
	}
	open, err := db.OpenIntent(testIntent())
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := db.Backup(backup); err != nil {
		t.Fatalf("Backup returned error: %v", err)
	}
	if err := db.Backup(backup); err == nil {
		t.Error("a second Backup to the same file returned nil error, want a refusal to overwrite")
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("backup file: %v, %v; want mode 0600", fi, err)
	}
	// The database is still in use, and the copy is a state database of
	// its own holding the ledger and the open intent.
	if _, err := db.BeginRun(Run{Trigger: "cli"}); err != nil {
		t.Fatal(err)
	}
	cp, err := Open(backup)
	if err != nil {
		t.Fatalf("opening the backup: %v", err)
	}
	defer closeDB(t, cp)
	if l, err := cp.Ledger(0); err != nil || len(l) != 1 {
		t.Errorf("backup ledger = %v, %v; want 1 entry", l, err)
	}
	if o, err := cp.OpenIntents(); err != nil || len(o) != 1 || o[0].ID != open.ID {
		t.Errorf("backup open intents = %v, %v; want intent %d", o, err, open.ID)
	}
	if r, err := cp.Runs(0); err != nil || len(r) != 0 {
		t.Errorf("backup runs = %v, %v; want none (taken before the run)", r, err)
	}
	// Only the copy is marked as a backup, with the time it was taken,
	// until its restore is confirmed.
	if _, marked, err := db.RestoredBackup(); marked || err != nil {
		t.Errorf("the live database: RestoredBackup = %v, %v; want unmarked", marked, err)
	}
	if at, marked, err := cp.RestoredBackup(); !marked || err != nil || time.Since(at) > time.Minute || time.Since(at) < 0 {
		t.Errorf("the copy: RestoredBackup = %v, %v, %v; want marked, taken now", at, marked, err)
	}
	if err := cp.ConfirmRestore(); err != nil {
		t.Fatal(err)
	}
	if _, marked, err := cp.RestoredBackup(); marked || err != nil {
		t.Errorf("the copy after ConfirmRestore: RestoredBackup = %v, %v; want unmarked", marked, err)
	}
}

// TestBackup_doesNotFailWrites: the SQLite database has one connection;
// a backup that held it for the whole copy made every state write wait,
// and fail once its query timeout ran out: a GET /api/v1/backup of a large
// database while a pass writes failed the pass's intents and its deferred
// closes. Backup copies in steps and gives the connection back between
// them. Here the query timeout is a fifth of the time a copy takes,
// standing for a database whose copy outlasts state.query_timeout (30 s).
// (audit-state, finding 2.)
func TestBackup_doesNotFailWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Some 48 MB of stored exports: they are kept for ever.
	if _, err := db.sql.Exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 48)
		INSERT INTO export_versions (revision, digest, size, at, source, body) SELECT i, 'd', 1048576, NULL, '', randomblob(1048576) FROM n`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := db.Backup(filepath.Join(t.TempDir(), "first.db")); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	closeDB(t, db)

	db, err = OpenConfig(context.Background(), Config{Path: dir, QueryTimeout: max(took/5, 5*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, db)
	backup := filepath.Join(t.TempDir(), "backup.db")
	done := make(chan error, 1)
	go func() { done <- db.Backup(backup) }()
	// Wait until the copy is being written.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if fi, err := os.Stat(backup); err == nil && fi.Size() > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the backup never started writing")
		}
	}
	_, openErr := db.OpenIntent(testIntent())
	if err := <-done; err != nil {
		t.Fatalf("Backup: %v", err)
	}
	if openErr != nil {
		t.Errorf("OpenIntent while a backup (%v long) runs: %v; want the intent recorded: a backup must not fail a pass's writes", took, openErr)
	}
	cp, err := Open(backup)
	if err != nil {
		t.Fatalf("opening the backup: %v", err)
	}
	defer closeDB(t, cp)
	if n, err := cp.sql.Query(`SELECT 1 FROM export_versions`); err != nil {
		t.Errorf("reading the backup: %v", err)
	} else {
		rows := 0
		for n.Next() {
			rows++
		}
		_ = n.Close()
		if rows != 48 {
			t.Errorf("the backup holds %d stored exports, want 48", rows)
		}
	}
}

func TestDialect_placeholders(t *testing.T) {
	t.Parallel()
	pg := &DB{dialect: dialectPostgres}
	if got, want := pg.q(`SELECT a FROM t WHERE b = ? AND c = ?`), `SELECT a FROM t WHERE b = $1 AND c = $2`; got != want {
		t.Errorf("q = %q, want %q", got, want)
	}
	lite := &DB{dialect: dialectSQLite}
	if got := lite.q(`b = ?`); got != `b = ?` {
		t.Errorf("SQLite q = %q", got)
	}
	_ = context.Background
}

// TestOpenConfig_existingCreatesImportsAndMigratesNothing: Config.Existing
// (psa-syncd backup) opens a database that is there, and refuses, changing
// nothing, a missing one (it was created, and then backed up as if it were
// the state), a bbolt file (imported) or an SQLite file without psa-syncd's
// schema (migrated).
func TestOpenConfig_existingCreatesImportsAndMigratesNothing(t *testing.T) {
	t.Parallel()
	existing := func(path string) (*DB, error) {
		return OpenConfig(t.Context(), Config{Path: path, Existing: true})
	}
	missing := filepath.Join(t.TempDir(), "typo")
	if db, err := existing(missing); err == nil || !strings.Contains(err.Error(), "there is no state database") || !errors.Is(err, ErrNoState) {
		if db != nil {
			closeDB(t, db)
		}
		t.Errorf("Existing open of a missing state directory = %v; want an error saying there is none, matching ErrNoState", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Existing open created the state directory: %v", err)
	}

	dir := t.TempDir()
	bolt, err := os.ReadFile("testdata/bbolt-v1.db")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, FileName)
	if err := os.WriteFile(file, bolt, 0o600); err != nil {
		t.Fatal(err)
	}
	if db, err := existing(dir); err == nil || !strings.Contains(err.Error(), "bbolt state file") {
		if db != nil {
			closeDB(t, db)
		}
		t.Errorf("Existing open of a bbolt file = %v; want it refused", err)
	}
	if got, _ := os.ReadFile(file); !bytes.Equal(got, bolt) {
		t.Error("Existing open changed the bbolt file")
	}
	if n := names(t, dir); len(n) != 1 {
		t.Errorf("Existing open of a bbolt file left %v; want only the file", n)
	}

	// An SQLite file in WAL mode without psa-syncd's schema: a normal
	// open would add it.
	blank := filepath.Join(t.TempDir(), "blank.db")
	raw, err := sql.Open("sqlite", blank+"?_pragma=journal_mode(WAL)")
	if err == nil {
		_, err = raw.Exec(`CREATE TABLE other (x INTEGER)`)
		_, _ = raw.Exec(`DROP TABLE other`)
		err = errors.Join(err, raw.Close())
	}
	if err != nil {
		t.Fatal(err)
	}
	if db, err := existing(blank); err == nil || !strings.Contains(err.Error(), "holds no psa-syncd state") || errors.Is(err, ErrNoState) {
		if db != nil {
			closeDB(t, db)
		}
		t.Errorf("Existing open of an SQLite file without the schema = %v; want it refused, not as a state not created yet (another program's file)", err)
	}

	// A state database is opened, and can be backed up.
	db, err := Open(filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	path := db.Path()
	closeDB(t, db)
	db, err = existing(path)
	if err != nil {
		t.Fatalf("Existing open of a state database = %v", err)
	}
	defer closeDB(t, db)
	if err := db.Backup(filepath.Join(t.TempDir(), "copy.db")); err != nil {
		t.Errorf("Backup = %v", err)
	}
}

// TestOpen_integrityCheckBoundNamed: the integrity check at open, which
// reads the whole file, has its own bound (CheckTimeout), and running out
// of it is an error naming the check, not only "context deadline
// exceeded". The bound here is too short for any file.
func TestOpen_integrityCheckBoundNamed(t *testing.T) {
	t.Parallel()
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path := db.Path()
	closeDB(t, db)
	db, err = OpenConfig(t.Context(), Config{Path: path, CheckTimeout: time.Nanosecond})
	if err == nil {
		closeDB(t, db)
		t.Fatal("Open with a 1ns integrity check bound succeeded")
	}
	for _, want := range []string{"integrity check of state database " + `"` + path + `"`, "quick_check", "did not finish within 1ns", "state.check_timeout", "left untouched"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open with a 1ns integrity check bound = %v; want it to say %q", err, want)
		}
	}
}

// names lists dir's entries.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestOpen_pageCacheSize checks that the state database's connection holds
// SQLite's page cache to sqliteCacheKiB rather than SQLite's default of
// 2 MB (a part of the memory a pass over 100,000 lines stays under).
func TestOpen_pageCacheSize(t *testing.T) {
	t.Parallel()
	db, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var kib int64
	if err := db.sql.QueryRowContext(t.Context(), "PRAGMA cache_size").Scan(&kib); err != nil {
		t.Fatal(err)
	}
	if kib != -sqliteCacheKiB {
		t.Errorf("PRAGMA cache_size = %d, want %d (KiB)", kib, -sqliteCacheKiB)
	}
}

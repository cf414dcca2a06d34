package main

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

// TestRun_checkStateOfNewerSchema: a state database that a newer
// psa-syncd has migrated (a rollback without the backup taken before the
// upgrade) is refused by run, sync and plan; check, the pre-flight, fails
// it in the same words instead of reporting it ok. (audit-upgrade,
// finding 2.)
func TestRun_checkStateOfNewerSchema(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	flag := "-config.file=" + e.cfgPath
	if code, stdout, stderr := runCmd(t, "sync", flag); code != 0 {
		t.Fatalf("sync: exit %d\n%s\n%s", code, stdout, stderr)
	}
	file := filepath.Join(e.dir, "state", state.FileName)
	raw, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 'now')`, state.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	flat := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	refusal := fmt.Sprintf(`state database %q has schema version %d, but this psa-syncd supports up to %d: upgrade psa-syncd`,
		file, state.SchemaVersion+1, state.SchemaVersion)
	newer := fmt.Sprintf("has schema version %d, but this psa-syncd supports up to %d: upgrade psa-syncd", state.SchemaVersion+1, state.SchemaVersion)
	if code, stdout, stderr := runCmd(t, "sync", flag); code != 1 || !strings.Contains(stderr, newer) {
		t.Errorf("sync on the newer schema: exit %d, want 1 and %q:\n%s\n%s", code, newer, stdout, stderr)
	}
	code, stdout, stderr := runCmd(t, "check", flag)
	if want := "FAIL state database: state: " + refusal; code != 1 || !strings.Contains(flat(stdout), want) {
		t.Errorf("check on the newer schema: exit %d, want 1 and %q:\n%s\n%s", code, want, stdout, stderr)
	}
}

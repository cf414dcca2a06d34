package daemon

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

// GET /api/v1/backup extends the server's write timeout, as a fresh plan
// does: the timeout covers making the copy and sending it, and a large
// database or a slow link was cut off. Here the server's write timeout has
// passed before the handler writes anything, which stands for a copy that
// takes longer than it.
func TestServer_backupOutlastsWriteTimeout(t *testing.T) {
	t.Parallel()
	const token = "s3cret"
	e := dtSetup(t, dtOptions{token: token})
	e.d.httpTimeouts = httpTimeouts{readHeader: time.Second, read: time.Second, write: time.Nanosecond, idle: time.Second}
	srv := e.d.newHTTPServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+ln.Addr().String()+"/api/v1/backup", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("GET /api/v1/backup: %v (the write timeout cut the answer)", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || len(body) < 100 || string(body[:16]) != "SQLite format 3\x00" {
		t.Errorf("GET /api/v1/backup = %d, %d bytes, %v; want 200 and the whole database", resp.StatusCode, len(body), err)
	}
	// Without a length a copy cut short would end like a complete one.
	if int64(len(body)) != resp.ContentLength {
		t.Errorf("read %d bytes, Content-Length %d; want the length of the copy", len(body), resp.ContentLength)
	}
}

// A process stopped during GET /api/v1/backup leaves its temporary copy,
// as large as the database, in the state directory: the next start removes
// it. (audit-state, finding 2.)
func TestServer_staleBackupCopiesRemovedAtStart(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	stale := filepath.Join(filepath.Dir(e.d.db.Path()), ".backup-123")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	dtWrite(t, filepath.Join(stale, state.FileName), "a copy cut short")
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, e.cfgPath, Options{Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale backup copy %s after a start: %v; want it removed", stale, err)
	}
	if _, err := os.Stat(d.db.Path()); err != nil {
		t.Errorf("the state database after a start: %v", err)
	}
}

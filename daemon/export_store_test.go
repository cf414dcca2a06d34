package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/export/s3test"
)

func TestCheckExport_nonCanonicalIDs(t *testing.T) {
	t.Parallel()
	cfg := &Config{PSA: PSAConfig{System: psa.SystemAutotask}}
	const form = `: Autotask ids are whole numbers from 0 up, written in decimal digits alone, such as "29684183"`
	tests := []struct {
		name string
		edit func(d *export.Document)
		want string
	}{
		{"contract_id with a leading zero", func(d *export.Document) { d.CustomerMappings[0].ContractID = "029684183" },
			`export: customer_mappings[0] (file/cust-a): contract_id "029684183" is not a valid Autotask id` + form},
		{"company_id with a space", func(d *export.Document) { d.CustomerMappings[0].CompanyID = " 174" },
			`export: customer_mappings[0] (file/cust-a): company_id " 174" is not a valid Autotask id` + form},
		{"service_id with a sign", func(d *export.Document) { d.ProductMappings[0].ServiceID = "+30000012" },
			`export: product_mappings[0] (file/CIXA-MSP): service_id "+30000012" is not a valid Autotask id` + form},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc := export.New(psa.SystemAutotask, "")
			doc.PutProduct(export.ProductMapping{Source: "file", Product: "CIXA-MSP", ServiceID: "30000012", SyncEnabled: true})
			doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: "cust-a", CompanyID: "174", ContractID: "29684183", UsageSync: true})
			if _, err := CheckExport(cfg, dtMust(doc.Encode()), ""); err != nil {
				t.Fatalf("CheckExport of the canonical export: %v", err)
			}
			tt.edit(doc)
			_, err := CheckExport(cfg, dtMust(doc.Encode()), "")
			if err == nil || err.Error() != tt.want {
				t.Errorf("CheckExport error = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestDaemon_Reload_refusesNonCanonicalIDs checks that an export whose
// contract or service id is spelled with a leading zero or a space (which
// the Autotask backend reads as the same id, but whose lines it reports
// under the canonical id) is refused, the last good export kept, and no
// pass posts the line's quantity again: before, every pass added it once
// more (11 → 22 → 33).
func TestDaemon_Reload_refusesNonCanonicalIDs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		edit  func(e *dtEnv, d *export.Document)
		field string
	}{
		{"contract_id", func(e *dtEnv, d *export.Document) {
			cm, _ := d.Customer("file", "cust-acme")
			cm.ContractID = "0" + dtID(e.contracts[0])
			d.PutCustomer(cm)
		}, `customer_mappings[0] (file/cust-acme): contract_id "0`},
		{"service_id", func(e *dtEnv, d *export.Document) {
			pm, _ := d.Product("file", "CIXA-MSP")
			pm.ServiceID = " " + dtID(e.services[0])
			d.PutProduct(pm)
		}, `product_mappings[0] (file/CIXA-MSP): service_id " `},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := dtSetup(t, dtOptions{})
			e.reloadAndSync(t)
			if got := e.units(0, 0); got != 11 {
				t.Fatalf("units after the first pass = %d, want 11", got)
			}

			bad := e.doc.Clone()
			bad.Revision = 2
			tt.edit(e, bad)
			e.writeExport(t, bad)
			err := e.d.Reload()
			if err == nil || !strings.Contains(err.Error(), tt.field) || !strings.Contains(err.Error(), "is not a valid Autotask id") {
				t.Errorf("Reload of the export returned %v, want an error naming %s", err, tt.field)
			}
			if rev := e.d.Export().Revision; rev != 1 {
				t.Errorf("export revision in use = %d, want the last good one (1)", rev)
			}
			for pass := range 2 {
				if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
					t.Fatal(err)
				}
				if got := e.units(0, 0); got != 11 {
					t.Errorf("units after pass %d with the bad export = %d, want 11", pass+2, got)
				}
			}
		})
	}
}

// outageProxy returns the URL of a reverse proxy to target that answers
// 503, as a store in an outage does, while down is set.
func outageProxy(t *testing.T, target string, down *atomic.Bool) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestDaemon_exportFromPSASyncdWithBasicUser: psa-syncd reads the export
// of another psa-syncd whose listener has basic_auth_users (every request
// needs a user's basic password) when export_url names a user and
// export_token is that user's password, a reader's (not the API token), as
// the CI billing report does (docs/guides/ci-workflow.md). Before, its
// export_url could name no user and it sent no basic credentials: every
// read got 401.
func TestDaemon_exportFromPSASyncdWithBasicUser(t *testing.T) {
	t.Parallel()
	const readerPassword = "ci-plan-reader-password"
	s := dtSetup(t, dtOptions{token: dtToken, exportURL: ExportSelf, noExport: true})
	api := httptest.NewServer(s.d.Handler())
	t.Cleanup(api.Close)
	// The listener's basic_auth_users, as exporter-toolkit checks them
	// before psa-syncd's handler.
	var denied atomic.Int32
	guarded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, password, ok := r.BasicAuth(); !ok || user != "ci-plan" || password != readerPassword {
			denied.Add(1)
			w.Header().Set("WWW-Authenticate", "Basic")
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		s.d.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(guarded.Close)
	store, err := export.NewHTTPBackend(api.URL, dtToken, api.Client())
	if err != nil {
		t.Fatal(err)
	}
	doc := s.doc.Clone()
	doc.PSA.Instance = "" // both simulators' instances accept it
	e := dtSetup(t, dtOptions{exportURL: strings.Replace(guarded.URL, "http://", "http://ci-plan@", 1), exportToken: readerPassword, noExport: true})
	if _, err := store.Save(t.Context(), e.encode(t, doc), ""); err != nil {
		t.Fatal(err)
	}
	e.d.reloadMu.Lock()
	err = e.d.reloadExportLocked(false)
	e.d.reloadMu.Unlock()
	if err != nil {
		t.Fatalf("reading the export as the reader user: %v", err)
	}
	if rev := e.d.Export().Revision; rev != doc.Revision || denied.Load() != 0 {
		t.Errorf("export revision in use = %d, %d requests refused; want %d, none", rev, denied.Load(), doc.Revision)
	}
}

// TestDaemon_exportReloadRecoversAfterStoreOutage: a remote store that
// fails a poll sets psa_sync_export_last_reload_successful to 0; once it
// answers again that it still holds the version in use (304), the metric is
// 1 again and the next failure is logged again. A version the daemon
// rejected is not made good by the same recovery. Before, the metric stayed
// 0 until the export changed or psa-syncd was reloaded, and
// PsaSyncExportReloadFailed fired for an export that was fine.
func TestDaemon_exportReloadRecoversAfterStoreOutage(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"s3", "psa-syncd"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			var down atomic.Bool
			var backend export.Backend
			var storeURL string
			switch store {
			case "s3":
				srv := s3test.Start(t)
				storeURL = (&s3test.Server{Endpoint: outageProxy(t, srv.Endpoint, &down)}).ObjectURL("prod/psa-mappings.json")
				b, err := export.OpenBackend(t.Context(), srv.ObjectURL("prod/psa-mappings.json"), export.BackendOptions{})
				if err != nil {
					t.Fatal(err)
				}
				backend = b
			case "psa-syncd":
				s := dtSetup(t, dtOptions{token: dtToken, exportURL: ExportSelf, noExport: true})
				api := httptest.NewServer(s.d.Handler())
				t.Cleanup(api.Close)
				storeURL = outageProxy(t, api.URL, &down)
				b, err := export.NewHTTPBackend(api.URL, dtToken, api.Client())
				if err != nil {
					t.Fatal(err)
				}
				backend = b
			}
			var logs bytes.Buffer
			e := dtSetup(t, dtOptions{exportURL: storeURL, noExport: true,
				daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
			// The psa-syncd store checks the instance against its own
			// simulator's: an export that names none passes both.
			doc := e.doc.Clone()
			doc.PSA.Instance = ""
			v1, err := backend.Save(t.Context(), e.encode(t, doc), "")
			if err != nil {
				t.Fatal(err)
			}
			poll := func() error {
				e.d.reloadMu.Lock()
				defer e.d.reloadMu.Unlock()
				return e.d.reloadExportLocked(false)
			}
			gauge := func() float64 { return testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful) }
			logged := func() int { return strings.Count(logs.String(), "Error reloading mapping export") }
			// failing reports whether the status page says the export
			// could not be loaded; it must agree with the gauge.
			failing := func() bool { return e.d.exportErr.Load() != nil }
			if err := poll(); err != nil {
				t.Fatal(err)
			}
			loadedAt := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessTimestamp)
			if gauge() != 1 || loadedAt == 0 {
				t.Fatalf("after the first load: successful = %v, success timestamp = %v; want 1 and set", gauge(), loadedAt)
			}

			down.Store(true)
			if err := poll(); err == nil {
				t.Fatal("a poll of a store in an outage succeeded")
			}
			if gauge() != 0 || logged() != 1 || !failing() {
				t.Fatalf("during the outage: successful = %v, %d errors logged, status page reports it: %v; want 0, 1, true", gauge(), logged(), failing())
			}
			down.Store(false)
			for range 2 {
				if err := poll(); err != nil {
					t.Fatalf("a poll after the outage: %v", err)
				}
				if got := gauge(); got != 1 || failing() {
					t.Errorf("after the store answers 304 for the version in use: successful = %v, status page reports a failure: %v; want 1, false", got, failing())
				}
			}
			if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessTimestamp); got != loadedAt {
				t.Errorf("success timestamp = %v after the outage, want %v: the export was not loaded again", got, loadedAt)
			}
			if !strings.Contains(logs.String(), "Mapping export store reachable again") {
				t.Errorf("the recovery was not logged:\n%s", logs.String())
			}
			// The same failure again is a new outage, and logged.
			down.Store(true)
			if err := poll(); err == nil {
				t.Fatal("a poll of a store in an outage succeeded")
			}
			if logged() != 2 {
				t.Errorf("a second outage logged %d errors in all, want 2:\n%s", logged(), logs.String())
			}
			down.Store(false)
			if err := poll(); err != nil || gauge() != 1 {
				t.Fatalf("after the second outage: %v, successful = %v; want nil, 1", err, gauge())
			}

			if store != "s3" {
				return // psa-syncd refuses to store an export it cannot use
			}
			// A version that is rejected stays rejected through an outage.
			bad := doc.Clone()
			bad.Revision = 2
			bad.PSA.System = psa.SystemConnectWise
			if _, err := backend.Save(t.Context(), e.encode(t, bad), v1); err != nil {
				t.Fatal(err)
			}
			if err := poll(); err == nil || gauge() != 0 {
				t.Fatalf("a poll of an export for another PSA: %v, successful = %v; want an error, 0", err, gauge())
			}
			down.Store(true)
			_ = poll()
			down.Store(false)
			for range 2 {
				if err := poll(); err != nil {
					t.Fatalf("a poll after the outage: %v", err)
				}
				if got := gauge(); got != 0 || !failing() {
					t.Errorf("the store still holds the rejected version: successful = %v, status page reports it: %v; want 0, true", got, failing())
				}
			}
			if got := e.d.Export().Revision; got != 1 {
				t.Errorf("export in use has revision %d, want 1", got)
			}
		})
	}
}

// TestDaemon_restartWhileRemoteStoreDown: psa-syncd keeps the last good
// export of an S3 store in its state database, and a restart while the
// store cannot be read starts with it, as the daemon would have kept using
// it had it not restarted: ready, and passes due. The reload stays failed
// (the alert fires) with the kept export's read time as the success
// timestamp, and the store answering that it still holds that version
// makes it good. Before, the restarted daemon had no export, was not ready
// and skipped its scheduled passes until the store came back.
func TestDaemon_restartWhileRemoteStoreDown(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	srv := s3test.Start(t)
	storeURL := (&s3test.Server{Endpoint: outageProxy(t, srv.Endpoint, &down)}).ObjectURL("prod/psa-mappings.json")
	backend, err := export.OpenBackend(t.Context(), srv.ObjectURL("prod/psa-mappings.json"), export.BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	e := dtSetup(t, dtOptions{exportURL: storeURL, noExport: true, daemonOpts: Options{Logger: logger}})
	if _, err := backend.Save(t.Context(), e.encode(t, e.doc), ""); err != nil {
		t.Fatal(err)
	}
	reload := func(force bool) error {
		e.d.reloadMu.Lock()
		defer e.d.reloadMu.Unlock()
		return e.d.reloadExportLocked(force)
	}
	if err := reload(true); err != nil {
		t.Fatal(err)
	}
	readAt := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessTimestamp)

	// A restart while the store answers 503.
	down.Store(true)
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.reg = prometheus.NewRegistry()
	d, err := New(cfg, e.cfgPath, Options{Logger: logger, Registry: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	e.d = d
	if err := reload(true); err == nil {
		t.Fatal("the reload of a store in an outage succeeded")
	}
	doc := e.d.Export()
	if doc == nil || doc.Revision != e.doc.Revision || len(doc.CustomerMappings) != len(e.doc.CustomerMappings) {
		t.Fatalf("after a restart while the store is down, the export in use is %+v, want revision %d with %d customers",
			doc, e.doc.Revision, len(e.doc.CustomerMappings))
	}
	if rec := dtServe(t, e.d, http.MethodGet, "/-/ready", "", ""); rec.Code != http.StatusOK {
		t.Errorf("GET /-/ready = %d %s, want 200: an export is in use", rec.Code, rec.Body)
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 0 || e.d.exportErr.Load() == nil {
		t.Errorf("psa_sync_export_last_reload_successful = %v with the store down, status page reports it: %v; want 0, true", got, e.d.exportErr.Load() != nil)
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessTimestamp); math.Abs(got-readAt) > 0.001 {
		t.Errorf("success timestamp = %v, want %v: when the kept export was read", got, readAt)
	}
	if !strings.Contains(logs.String(), "Using the last good mapping export kept in the state database") {
		t.Errorf("the kept export's use was not logged:\n%s", logs.String())
	}

	// The store answers again, with the same version: good again, without
	// loading it anew.
	down.Store(false)
	if err := reload(false); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 1 || e.d.exportErr.Load() != nil {
		t.Errorf("psa_sync_export_last_reload_successful = %v once the store answers 304, status page reports a failure: %v; want 1, false", got, e.d.exportErr.Load() != nil)
	}
	if !strings.Contains(logs.String(), "Mapping export store reachable again") {
		t.Errorf("the recovery was not logged:\n%s", logs.String())
	}

	// A kept export is the store's: a daemon pointed at another store
	// that cannot be read starts without one.
	other := (&s3test.Server{Endpoint: outageProxy(t, srv.Endpoint, &down)}).ObjectURL("other/psa-mappings.json")
	down.Store(true)
	cfg.ExportURL = other
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	d2, err := New(cfg, e.cfgPath, Options{Logger: logger, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d2.Close() })
	d2.reloadMu.Lock()
	_ = d2.reloadExportLocked(true)
	d2.reloadMu.Unlock()
	if got := d2.Export(); got != nil {
		t.Errorf("a daemon pointed at another store, which cannot be read, uses revision %d kept for the first store", got.Revision)
	}
}

// TestDaemon_restartWithRejectedVersionInStore: a restart while the S3
// store holds a version psa-syncd rejects (another PSA's export written
// over it) starts with the last good export kept in the state database and
// logs the rejection once, as a daemon that had not restarted does: the
// polls after it ask for a version other than the rejected one, and the
// store's 304 is not taken for a new failure. Before, the kept export's
// version replaced the rejected one as the version examined, so every poll
// (every 5 s) read the rejected export in full again and logged its error.
func TestDaemon_restartWithRejectedVersionInStore(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	storeURL := srv.ObjectURL("prod/psa-mappings.json")
	backend, err := export.OpenBackend(t.Context(), storeURL, export.BackendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	e := dtSetup(t, dtOptions{exportURL: storeURL, noExport: true, daemonOpts: Options{Logger: logger}})
	v1, err := backend.Save(t.Context(), e.encode(t, e.doc), "")
	if err != nil {
		t.Fatal(err)
	}
	reload := func(d *Daemon, force bool) error {
		d.reloadMu.Lock()
		defer d.reloadMu.Unlock()
		return d.reloadExportLocked(force)
	}
	if err := reload(e.d, true); err != nil {
		t.Fatal(err)
	}
	bad := e.doc.Clone()
	bad.Revision++
	bad.PSA.System = psa.SystemConnectWise
	v2, err := backend.Save(t.Context(), e.encode(t, bad), v1)
	if err != nil {
		t.Fatal(err)
	}

	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	d, err := New(cfg, e.cfgPath, Options{Logger: logger, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := reload(d, true); err == nil {
		t.Fatal("the reload of an export for another PSA succeeded")
	}
	if got := d.Export(); got == nil || got.Revision != e.doc.Revision {
		t.Fatalf("after a restart with a rejected version in the store, the export in use is %+v, want the kept revision %d", got, e.doc.Revision)
	}
	for range 3 {
		if err := reload(d, false); err != nil {
			t.Fatalf("a poll of the rejected version examined already: %v", err)
		}
	}
	errorsLogged := func() int {
		return strings.Count(logs.String(), "Error loading mapping export") + strings.Count(logs.String(), "Error reloading mapping export")
	}
	if n := errorsLogged(); n != 1 {
		t.Errorf("a start and 3 polls of one rejected version logged %d errors, want 1:\n%s", n, logs.String())
	}
	if got := testutil.ToFloat64(d.metrics.ExportLastReloadSuccessful); got != 0 || d.exportErr.Load() == nil {
		t.Errorf("psa_sync_export_last_reload_successful = %v, status page reports a failure: %v; want 0, true: the store holds a rejected version",
			got, d.exportErr.Load() != nil)
	}

	// The store holds a good version again: it is loaded.
	good := e.doc.Clone()
	good.Revision = bad.Revision + 1
	if _, err := backend.Save(t.Context(), e.encode(t, good), v2); err != nil {
		t.Fatal(err)
	}
	if err := reload(d, false); err != nil {
		t.Fatal(err)
	}
	if got := d.Export().Revision; got != good.Revision || testutil.ToFloat64(d.metrics.ExportLastReloadSuccessful) != 1 {
		t.Errorf("after the store holds a good version: revision %d, successful = %v; want %d, 1",
			got, testutil.ToFloat64(d.metrics.ExportLastReloadSuccessful), good.Revision)
	}
}

// TestDaemon_restartWithRejectedExportFile: a file store's last good
// export is kept in the state database as an S3 store's is, so that a
// restart (a reboot, an upgrade) while the file holds an export psa-syncd
// rejects (one written by a newer provider, another PSA's) starts with
// the export it was using, ready and with its scheduled passes, the reload
// still failed (the alert fires). Before, such a restart had no export
// at all: not ready, and every pass skipped until the file was fixed.
// The file fixed is loaded at the next poll.
func TestDaemon_restartWithRejectedExportFile(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	e := dtSetup(t, dtOptions{daemonOpts: Options{Logger: logger}})
	reload := func(d *Daemon, force bool) error {
		d.reloadMu.Lock()
		defer d.reloadMu.Unlock()
		return d.reloadExportLocked(force)
	}
	if err := reload(e.d, true); err != nil {
		t.Fatal(err)
	}
	bad := e.doc.Clone()
	bad.Revision++
	bad.PSA.System = psa.SystemConnectWise
	e.writeExport(t, bad)
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	d, err := New(cfg, e.cfgPath, Options{Logger: logger, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := reload(d, true); err == nil {
		t.Fatal("the reload of an export for another PSA succeeded")
	}
	if got := d.Export(); got == nil || got.Revision != e.doc.Revision || len(got.CustomerMappings) != len(e.doc.CustomerMappings) {
		t.Fatalf("after a restart with a rejected export file, the export in use is %+v, want the kept revision %d", got, e.doc.Revision)
	}
	if rec := dtServe(t, d, http.MethodGet, "/-/ready", "", ""); rec.Code != http.StatusOK {
		t.Errorf("GET /-/ready = %d %s, want 200: an export is in use", rec.Code, rec.Body)
	}
	if got := testutil.ToFloat64(d.metrics.ExportLastReloadSuccessful); got != 0 || d.exportErr.Load() == nil {
		t.Errorf("psa_sync_export_last_reload_successful = %v, status page reports a failure: %v; want 0, true", got, d.exportErr.Load() != nil)
	}
	if !strings.Contains(logs.String(), "Using the last good mapping export kept in the state database") {
		t.Errorf("the kept export's use was not logged:\n%s", logs.String())
	}
	for range 2 {
		_ = reload(d, false)
	}
	if got := d.Export().Revision; got != e.doc.Revision {
		t.Errorf("after polls of the unchanged rejected file, revision %d is in use, want %d", got, e.doc.Revision)
	}

	good := e.doc.Clone()
	good.Revision = bad.Revision + 1
	e.writeExport(t, good)
	if err := reload(d, false); err != nil {
		t.Fatal(err)
	}
	if got := d.Export().Revision; got != good.Revision || testutil.ToFloat64(d.metrics.ExportLastReloadSuccessful) != 1 || d.exportErr.Load() != nil {
		t.Errorf("after the file is fixed: revision %d, successful = %v; want %d, 1 and no failure reported",
			got, testutil.ToFloat64(d.metrics.ExportLastReloadSuccessful), good.Revision)
	}
}

// TestDaemon_restartWithRejectedSelfRevision: with export_url: self, a
// restart while the newest stored revision is one this psa-syncd rejects
// (a newer psa-syncd sharing the database stored it with a field this one
// does not read, or psa-syncd was rolled back) starts with the newest
// revision before it that passes, as a file or S3 store starts with the
// kept export; before, it had none (passes skipped). The reload stays
// failed until a revision it accepts is stored.
func TestDaemon_restartWithRejectedSelfRevision(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	e := dtSetup(t, dtOptions{token: dtToken, exportURL: "self", noExport: true, daemonOpts: Options{Logger: logger}})
	put := func(h http.Handler, doc *export.Document, header map[string]string) {
		t.Helper()
		if rec := dtExportRequest(t, h, http.MethodPut, "/api/v1/export", e.encode(t, doc), header); rec.Code/100 != 2 {
			t.Fatalf("PUT of revision %d = %d %s", doc.Revision, rec.Code, rec.Body)
		}
	}
	put(e.d.Handler(), e.doc, map[string]string{"If-None-Match": "*"})
	good := e.doc.Clone()
	good.Revision = 2
	good.DeleteCustomer("file", "cust-globex")
	put(e.d.Handler(), good, map[string]string{"If-Match": `"1"`})

	// Revision 3, as a newer psa-syncd stores it: a field this one does
	// not read.
	var fields map[string]any
	if err := json.Unmarshal(e.encode(t, good), &fields); err != nil {
		t.Fatal(err)
	}
	fields["revision"], fields["field_of_a_newer_provider"] = 3, true
	newer, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.d.db.PutExport(state.ExportVersion{Revision: 3, Digest: export.Digest(newer), Source: "newer"}, newer); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Close(); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(e.cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, e.cfgPath, Options{Logger: logger, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "field_of_a_newer_provider") {
		t.Fatalf("the reload of a revision with an unknown field returned %v, want its error", err)
	}
	if got := d.Export(); got == nil || got.Revision != good.Revision || len(got.CustomerMappings) != len(good.CustomerMappings) {
		t.Fatalf("after a restart with a rejected newest revision, the export in use is %+v, want revision %d", got, good.Revision)
	}
	if !d.Ready() {
		t.Error("not ready: an export is in use")
	}
	if got := testutil.ToFloat64(d.metrics.ExportLastReloadSuccessful); got != 0 || d.exportErr.Load() == nil {
		t.Errorf("psa_sync_export_last_reload_successful = %v, status page reports a failure: %v; want 0, true", got, d.exportErr.Load() != nil)
	}
	if !strings.Contains(logs.String(), "Using the newest stored mapping export this psa-syncd accepts") {
		t.Errorf("the older revision's use was not logged:\n%s", logs.String())
	}
	if rec := dtExportRequest(t, d.Handler(), http.MethodGet, "/api/v1/export", nil, nil); rec.Header().Get("ETag") != `"3"` {
		t.Errorf("GET /api/v1/export ETag = %s, want the newest stored revision \"3\", the one a PUT's If-Match names", rec.Header().Get("ETag"))
	}

	fixed := good.Clone()
	fixed.Revision = 4
	put(d.Handler(), fixed, map[string]string{"If-Match": `"3"`})
	if got := d.Export().Revision; got != fixed.Revision || testutil.ToFloat64(d.metrics.ExportLastReloadSuccessful) != 1 || d.exportErr.Load() != nil {
		t.Errorf("after a revision it accepts is stored: revision %d, successful = %v; want %d, 1 and no failure reported",
			got, testutil.ToFloat64(d.metrics.ExportLastReloadSuccessful), fixed.Revision)
	}
}

// TestDaemon_exportStoreIgnoringIfNoneMatch: a store that answers every
// poll in full, with the version it gave before (If-None-Match ignored by
// the store or a proxy in front of it), is taken as unchanged: an export in
// use is not loaded again (its success timestamp stays, as README promises),
// and a rejected one is not logged again at every poll.
func TestDaemon_exportStoreIgnoringIfNoneMatch(t *testing.T) {
	t.Parallel()
	var body atomic.Pointer[[]byte]
	var etag atomic.Pointer[string]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("ETag", *etag.Load())
		_, _ = w.Write(*body.Load())
	}))
	t.Cleanup(srv.Close)
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{exportURL: srv.URL, noExport: true, daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	serve := func(v string, doc *export.Document) {
		data := e.encode(t, doc)
		body.Store(&data)
		etag.Store(&v)
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	e.d.now = func() time.Time { return now }
	poll := func() error {
		e.d.reloadMu.Lock()
		defer e.d.reloadMu.Unlock()
		return e.d.reloadExportLocked(false)
	}
	serve(`"1"`, e.doc)
	if err := poll(); err != nil {
		t.Fatal(err)
	}
	loadedAt := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessTimestamp)
	now = now.Add(time.Minute)
	if err := poll(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessTimestamp); got != loadedAt {
		t.Errorf("success timestamp = %v after a poll that found the export unchanged, want %v", got, loadedAt)
	}

	bad := e.doc.Clone()
	bad.PSA.System = psa.SystemConnectWise
	serve(`"2"`, bad)
	if err := poll(); err == nil {
		t.Fatal("a poll of an export for another PSA succeeded")
	}
	_, _ = poll(), poll() // a version rejected stays rejected, as after a 304
	if n := strings.Count(logs.String(), "Error reloading mapping export"); n != 1 {
		t.Errorf("three polls of one rejected version logged %d errors, want 1:\n%s", n, logs.String())
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 0 {
		t.Errorf("psa_sync_export_last_reload_successful = %v while the store holds a rejected version, want 0", got)
	}
}

// TestDaemon_exportStoreWithoutETag: a store whose answers carry no ETag
// (a proxy in front of another psa-syncd that drops it) gives no version
// to ask again with. The export's digest stands for it: an unchanged
// export is not loaded again nor kept in the state database again at
// every poll, and a rejected one is logged once, not every 5 s.
func TestDaemon_exportStoreWithoutETag(t *testing.T) {
	t.Parallel()
	var body atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(*body.Load())
	}))
	t.Cleanup(srv.Close)
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{exportURL: srv.URL, noExport: true, daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	serve := func(doc *export.Document) {
		data := e.encode(t, doc)
		body.Store(&data)
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	e.d.now = func() time.Time { return now }
	poll := func() error {
		e.d.reloadMu.Lock()
		defer e.d.reloadMu.Unlock()
		return e.d.reloadExportLocked(false)
	}
	serve(e.doc)
	if err := poll(); err != nil {
		t.Fatal(err)
	}
	kept, err := e.d.db.LastRemoteExport(storeKey(e.d.cfg.Load()))
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if err := poll(); err != nil {
		t.Fatal(err)
	}
	if again, err := e.d.db.LastRemoteExport(storeKey(e.d.cfg.Load())); err != nil || !again.At.Equal(kept.At) {
		t.Errorf("the unchanged export was kept again at a poll: kept at %v, then %v (%v)", kept.At, again.At, err)
	}

	bad := e.doc.Clone()
	bad.Revision++
	bad.PSA.System = psa.SystemConnectWise
	serve(bad)
	if err := poll(); err == nil {
		t.Fatal("a poll of an export for another PSA succeeded")
	}
	_, _ = poll(), poll()
	if n := strings.Count(logs.String(), "Error reloading mapping export"); n != 1 {
		t.Errorf("three polls of one rejected export logged %d errors, want 1:\n%s", n, logs.String())
	}
	if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 0 {
		t.Errorf("psa_sync_export_last_reload_successful = %v while the store holds a rejected export, want 0", got)
	}
	good := e.doc.Clone()
	good.Revision = bad.Revision + 1
	serve(good)
	if err := poll(); err != nil || e.d.Export().Revision != good.Revision {
		t.Errorf("a poll of a good export after the rejected one: %v, revision %d in use; want nil, %d", err, e.d.Export().Revision, good.Revision)
	}
}

// TestDaemon_remoteStoreRefusalLoggedOnce: a store that refuses every read
// with 403 (S3's AccessDenied, whose body carries a new request id each
// time; a proxy or WAF in front of psa-syncd answering a page with its own
// request id) keeps the export in use, the reload metric at 0 and the
// status page's error, and is logged once, not at every poll; its answer
// again is logged.
func TestDaemon_remoteStoreRefusalLoggedOnce(t *testing.T) {
	t.Parallel()
	for _, store := range []string{"s3", "psa-syncd"} {
		t.Run(store, func(t *testing.T) {
			t.Parallel()
			var denied atomic.Bool
			var n atomic.Int64
			var backend export.Backend
			var target string
			deny := func(w http.ResponseWriter) {}
			switch store {
			case "s3":
				srv := s3test.Start(t)
				target = srv.Endpoint
				b, err := export.OpenBackend(t.Context(), srv.ObjectURL("prod/psa-mappings.json"), export.BackendOptions{})
				if err != nil {
					t.Fatal(err)
				}
				backend = b
				deny = func(w http.ResponseWriter) {
					w.Header().Set("Content-Type", "application/xml")
					w.Header().Set("X-Amz-Request-Id", fmt.Sprintf("%016X", n.Add(1)))
					w.WriteHeader(http.StatusForbidden)
					fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>%016X</RequestId><HostId>%x</HostId></Error>`, n.Load(), n.Load()*7919)
				}
			case "psa-syncd":
				s := dtSetup(t, dtOptions{token: dtToken, exportURL: ExportSelf, noExport: true})
				api := httptest.NewServer(s.d.Handler())
				t.Cleanup(api.Close)
				target = api.URL
				b, err := export.NewHTTPBackend(api.URL, dtToken, api.Client())
				if err != nil {
					t.Fatal(err)
				}
				backend = b
				deny = func(w http.ResponseWriter) {
					w.Header().Set("Content-Type", "text/html")
					w.WriteHeader(http.StatusForbidden)
					fmt.Fprintf(w, "<html><body><h1>403 Forbidden</h1><p>Request blocked. Ray ID: %x</p></body></html>", 0x7c1d2e3f4a5b6000+n.Add(1))
				}
			}
			u, err := url.Parse(target)
			if err != nil {
				t.Fatal(err)
			}
			proxy := httputil.NewSingleHostReverseProxy(u)
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if denied.Load() {
					deny(w)
					return
				}
				proxy.ServeHTTP(w, r)
			}))
			t.Cleanup(front.Close)
			storeURL := front.URL
			if store == "s3" {
				storeURL = (&s3test.Server{Endpoint: front.URL}).ObjectURL("prod/psa-mappings.json")
			}
			var logs bytes.Buffer
			e := dtSetup(t, dtOptions{exportURL: storeURL, noExport: true,
				daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
			doc := e.doc.Clone()
			doc.PSA.Instance = ""
			if _, err := backend.Save(t.Context(), e.encode(t, doc), ""); err != nil {
				t.Fatal(err)
			}
			poll := func() error {
				e.d.reloadMu.Lock()
				defer e.d.reloadMu.Unlock()
				return e.d.reloadExportLocked(false)
			}
			if err := poll(); err != nil {
				t.Fatal(err)
			}
			denied.Store(true)
			for range 3 {
				if err := poll(); err == nil {
					t.Fatal("a poll of a store answering 403 succeeded")
				}
			}
			if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 0 {
				t.Errorf("psa_sync_export_last_reload_successful = %v while the store answers 403, want 0", got)
			}
			if f := e.d.exportErr.Load(); f == nil || !strings.Contains(f.err.Error(), "403") {
				t.Errorf("the status's export error = %+v, want the 403", f)
			}
			if got := strings.Count(logs.String(), "Error reloading mapping export"); got != 1 {
				t.Errorf("3 polls of a store answering 403 logged %d errors, want 1:\n%s", got, logs.String())
			}
			if got := e.d.Export().Revision; got != doc.Revision {
				t.Errorf("export in use has revision %d, want %d", got, doc.Revision)
			}
			denied.Store(false)
			if err := poll(); err != nil {
				t.Fatal(err)
			}
			if got := testutil.ToFloat64(e.d.metrics.ExportLastReloadSuccessful); got != 1 || !strings.Contains(logs.String(), "Mapping export store reachable again") {
				t.Errorf("after the store answers again: successful = %v, want 1 and the recovery logged:\n%s", got, logs.String())
			}
		})
	}
}

// TestDaemon_publishesReaderFieldsBesideExport: psa-syncd writes the
// export fields it reads beside the export in a file or S3 store
// (export.ReadersSuffix), with its version and the time, at its first
// reload from a store, even one that refuses the export (when a newer
// provider's plan needs them most), and again export.ReadersRefresh later,
// not at every reload, so that a provider newer than psa-syncd fails a plan that
// would write a field psa-syncd does not read instead of psa-syncd
// refusing the export at its reload. A store it may not write is logged,
// and the export still loads. Only psa-syncd run publishes: the one-off
// commands, which CI may run with read-only credentials, write nothing.
func TestDaemon_publishesReaderFieldsBesideExport(t *testing.T) {
	t.Parallel()
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
		e := dtSetup(t, dtOptions{daemonOpts: Options{PublishExportFields: true, Version: "1.9.0", Now: func() time.Time { return now }}})
		bad := e.doc.Clone()
		bad.PSA.System = psa.SystemConnectWise // refused: psa-syncd is configured for Autotask
		e.writeExport(t, bad)
		if err := e.d.Reload(); err == nil {
			t.Fatal("Reload of an export for another PSA succeeded")
		}
		wantReaders(t, export.NewFileBackend(e.exportPath), "1.9.0", now)
		// Removed by hand: not written again by this process before
		// export.ReadersRefresh.
		if err := os.Remove(e.exportPath + export.ReadersSuffix); err != nil {
			t.Fatal(err)
		}
		e.writeExport(t, e.doc)
		now = now.Add(export.ReadersRefresh - time.Second)
		if err := e.d.Reload(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(e.exportPath + export.ReadersSuffix); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("readers written again by the same process within %v: %v", export.ReadersRefresh, err)
		}
		// export.ReadersRefresh after the last: confirmed again, at an
		// unchanged export's reload.
		now = now.Add(time.Second)
		if err := e.d.Reload(); err != nil {
			t.Fatal(err)
		}
		wantReaders(t, export.NewFileBackend(e.exportPath), "1.9.0", now)
	})
	t.Run("s3", func(t *testing.T) {
		t.Parallel()
		srv := s3test.Start(t)
		storeURL := srv.ObjectURL("prod/psa-mappings.json")
		e := dtSetup(t, dtOptions{exportURL: storeURL, noExport: true, daemonOpts: Options{PublishExportFields: true}})
		b, err := export.OpenBackend(t.Context(), storeURL, export.BackendOptions{})
		if err != nil {
			t.Fatal(err)
		}
		doc := e.doc.Clone()
		doc.PSA.Instance = ""
		if _, err := b.Save(t.Context(), e.encode(t, doc), ""); err != nil {
			t.Fatal(err)
		}
		if err := e.d.Reload(); err != nil {
			t.Fatal(err)
		}
		entries, found, err := export.LoadReaders(t.Context(), b)
		if !found || err != nil || len(entries) != 1 || !slices.Equal(entries[0].Fields, export.ReaderFields()) || !entries[0].Fresh(time.Now()) {
			t.Errorf("readers beside %s = %v, %v, %v; want export.ReaderFields(), confirmed now", storeURL, entries, found, err)
		}
	})
	t.Run("read-only", func(t *testing.T) {
		t.Parallel()
		var logs bytes.Buffer
		e := dtSetup(t, dtOptions{daemonOpts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), PublishExportFields: true}})
		// A directory where the readers file would go: its write fails, as
		// on a read-only mount (tests run as root, whom modes do not stop).
		if err := os.Mkdir(e.exportPath+export.ReadersSuffix, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := e.d.Reload(); err != nil {
			t.Fatalf("Reload with a store psa-syncd cannot write beside: %v", err)
		}
		if !strings.Contains(logs.String(), "Could not write the export fields this psa-syncd reads beside the mapping export") {
			t.Errorf("logs lack the failed write:\n%s", logs.String())
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		// The export's directory is the export writer's to create (the
		// CI's apply), with the owner and mode its readers need: psa-syncd
		// does not create it, as its own user, for the readers file, and
		// writes that file once the directory exists.
		t.Parallel()
		e := dtSetup(t, dtOptions{exportURL: "exports/psa-mappings.json", noExport: true, daemonOpts: Options{PublishExportFields: true}})
		dir := filepath.Join(e.dir, "exports")
		if err := e.d.Reload(); err == nil {
			t.Fatal("Reload without an export succeeded")
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("psa-syncd created the export's directory: %v", err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = e.d.Reload()
		entries, found, err := export.LoadReaders(t.Context(), export.NewFileBackend(filepath.Join(dir, "psa-mappings.json")))
		if !found || err != nil || len(entries) != 1 {
			t.Errorf("readers once the directory exists = %v, %v, %v; want this psa-syncd's", entries, found, err)
		}
	})
	t.Run("one-off command", func(t *testing.T) {
		t.Parallel()
		e := dtSetup(t, dtOptions{})
		if err := e.d.Reload(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(e.exportPath + export.ReadersSuffix); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a daemon without PublishExportFields wrote beside the export: %v", err)
		}
	})
}

// wantReaders fails t unless the readers beside b's export are this
// build's, of version, confirmed at now.
func wantReaders(t *testing.T, b export.Backend, version string, now time.Time) {
	t.Helper()
	entries, found, err := export.LoadReaders(t.Context(), b)
	if !found || err != nil || len(entries) != 1 || entries[0].Version != version || !slices.Equal(entries[0].Fields, export.ReaderFields()) ||
		!entries[0].Confirmed.Equal(now) {
		t.Fatalf("readers beside %s = %v, %v, %v; want export.ReaderFields() of %s confirmed at %v", b, entries, found, err, version, now)
	}
}

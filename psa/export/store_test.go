package export

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func acme() CustomerMapping {
	return CustomerMapping{Source: "sophos", CustomerID: "718b6047", CustomerName: "Acme", CompanyID: "174", ContractID: "29684183", UsageSync: true}
}

func cixa() ProductMapping {
	return ProductMapping{Source: "sophos", Product: "CIXA-MSP", ServiceID: "30000012", ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true}
}

// clock is a test clock that advances a minute per call.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Minute)
	return c.now
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 11, 21, 10, 0, 0, 0, time.FixedZone("CET", 3600))}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dirEntries lists a directory, to check that no temporary file is left.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestStore_Update(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "psa-mappings.json")
	clk := newClock()
	s := NewStore(path, WithClock(clk.Now))
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}

	d, err := s.Update(psa.SystemAutotask, "webservices5.autotask.net", func(d *Document) error {
		d.PutCustomer(acme())
		return nil
	})
	if err != nil {
		t.Fatalf("Update returned error %v", err)
	}
	if d.Revision != 1 || !d.UpdatedAt.Equal(time.Date(2026, 11, 21, 9, 1, 0, 0, time.UTC)) || d.UpdatedAt.Location() != time.UTC {
		t.Errorf("first Update: revision %d, updated_at %v", d.Revision, d.UpdatedAt)
	}
	want, _ := d.Encode()
	if got := readFile(t, path); !bytes.Equal(got, want) {
		t.Errorf("file =\n%s\nwant\n%s", got, want)
	}

	d, err = s.Update(psa.SystemAutotask, "webservices5.autotask.net", func(d *Document) error {
		d.PutProduct(cixa())
		return nil
	})
	if err != nil || d.Revision != 2 {
		t.Fatalf("second Update = revision %d, %v", d.Revision, err)
	}
	written := readFile(t, path)

	// Writing what is already there changes nothing, not even updated_at.
	d, err = s.Update(psa.SystemAutotask, "webservices5.autotask.net", func(d *Document) error {
		d.PutProduct(cixa())
		d.PutCustomer(acme())
		return nil
	})
	if err != nil || d.Revision != 2 {
		t.Fatalf("no-op Update = revision %d, %v", d.Revision, err)
	}
	if got := readFile(t, path); !bytes.Equal(got, written) {
		t.Errorf("no-op Update rewrote the file:\n%s", got)
	}

	read, err := s.Read()
	if err != nil {
		t.Fatalf("Read returned error %v", err)
	}
	if diff := cmp.Diff(d, read); diff != "" {
		t.Errorf("Read differs from the last Update (-update +read):\n%s", diff)
	}

	d, err = s.Update(psa.SystemAutotask, "", func(d *Document) error {
		if !d.DeleteCustomer("sophos", "718b6047") {
			t.Error("DeleteCustomer found nothing")
		}
		return nil
	})
	if err != nil || d.Revision != 3 || len(d.CustomerMappings) != 0 || len(d.ProductMappings) != 1 {
		t.Fatalf("deleting Update = %+v, %v", d, err)
	}

	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("export mode = %v, %v; want 0644", fi.Mode(), err)
	}
	if diff := cmp.Diff([]string{"psa-mappings.json", "psa-mappings.json.lock"}, dirEntries(t, dir)); diff != "" {
		t.Errorf("directory has unexpected files (-want +got):\n%s", diff)
	}
}

func TestStore_Update_nothingToWrite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.json")
	d, err := NewStore(path).Update(psa.SystemAutotask, "ws5", func(*Document) error { return nil })
	if err != nil || d.Revision != 0 || d.PSA.Instance != "ws5" {
		t.Fatalf("Update = %+v, %v", d, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Update that changed nothing created the file: %v", err)
	}
}

// TestStore_Update_removesStaleTemps: a writer killed between creating its
// temporary file and renaming it leaves the file behind; the next Update,
// which holds the lock, removes it, and nothing else in the directory.
func TestStore_Update_removesStaleTemps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "export.json")
	stale := filepath.Join(dir, ".export.json.tmp-1234567")
	other := filepath.Join(dir, ".other.json.tmp-1234567")
	for _, f := range []string{stale, other} {
		if err := os.WriteFile(f, []byte(`{"half`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewStore(path).Update(psa.SystemAutotask, "", func(*Document) error { return nil }); err != nil {
		t.Fatalf("Update returned error %v", err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Update left the stale temporary file %s: %v", stale, err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("Update removed another export's file %s: %v", other, err)
	}
}

func TestStore_Read_missing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "none.json")
	_, err := NewStore(path).Read()
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read returned %v, want an error matching fs.ErrNotExist", err)
	}
	want := fmt.Sprintf("export %q: file does not exist (no mapping export has been written there yet)", path)
	if err.Error() != want {
		t.Errorf("Read error\n got: %s\nwant: %s", err, want)
	}
}

func TestStore_Update_createsDirectory(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "exports", "prod", "psa-mappings.json")
	if _, err := NewStore(path).Update(psa.SystemAutotask, "", func(d *Document) error {
		d.PutProduct(cixa())
		return nil
	}); err != nil {
		t.Fatalf("Update returned error %v", err)
	}
	if _, err := NewStore(path).Read(); err != nil {
		t.Errorf("Read returned error %v", err)
	}
}

// TestStore_Update_corrupt checks that a file Update cannot read is
// reported and left exactly as it was, whatever fn would have done.
func TestStore_Update_corrupt(t *testing.T) {
	t.Parallel()
	good, err := testDocument().Encode()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content []byte
		want    string // after `export "<path>": `
	}{
		{"half-written", good[:len(good)/2], "not valid JSON at line 33, column 13 (byte 796): unexpected end of input (the file may be half-written or edited by hand)"},
		{"empty", nil, "not valid JSON: the file is empty (the file may be half-written or edited by hand)"},
		{"garbage", []byte("\x00\x00\x00\x00"), "not valid JSON at line 1, column 1 (byte 0): invalid character '\\x00' looking for beginning of value (the file may be half-written or edited by hand)"},
		{"invalid", bytes.Replace(good, []byte(`"contract_id": "29684183"`), []byte(`"contract_id": ""`), 1), "customer_mappings[1] (sophos/718b6047-2f4c-4f8e-9d27-3f0d9a1c5e11): contract_id is required"},
		{"foreign schema", bytes.Replace(good, []byte("psa-sync.mapping-export/v1"), []byte("acme.billing/v1"), 1), `schema "acme.billing/v1" is not a supported version (supported: "psa-sync.mapping-export/v1")`},
		{"future schema", bytes.Replace(good, []byte("/v1"), []byte("/v2"), 1), `schema "psa-sync.mapping-export/v2" is not a supported version (supported: "psa-sync.mapping-export/v1"): a newer psa-sync wrote it; upgrade this psa-syncd or provider to one that reads it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "psa-mappings.json")
			if err := os.WriteFile(path, tt.content, 0o644); err != nil {
				t.Fatal(err)
			}
			called := false
			d, err := NewStore(path).Update(psa.SystemAutotask, "webservices5.autotask.net", func(d *Document) error {
				called = true
				d.PutCustomer(acme())
				return nil
			})
			if err == nil {
				t.Fatalf("Update returned %+v, want error", d)
			}
			if want := fmt.Sprintf("export %q: %s", path, tt.want); err.Error() != want {
				t.Errorf("Update error\n got: %s\nwant: %s", err, want)
			}
			if called {
				t.Error("Update ran fn on a document it could not read")
			}
			if got := readFile(t, path); !bytes.Equal(got, tt.content) {
				t.Errorf("Update changed the file to\n%s", got)
			}
			if diff := cmp.Diff([]string{"psa-mappings.json", "psa-mappings.json.lock"}, dirEntries(t, dir)); diff != "" {
				t.Errorf("directory has unexpected files (-want +got):\n%s", diff)
			}
		})
	}
}

func writeDoc(t *testing.T, path string, d *Document) []byte {
	t.Helper()
	b, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStore_Update_otherPSA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cw := filepath.Join(dir, "cw.json")
	cwDoc := New(psa.SystemConnectWise, "na.myconnectwise.net")
	cwDoc.PutProduct(cixa())
	cwBytes := writeDoc(t, cw, cwDoc)

	at := filepath.Join(dir, "at.json")
	atDoc := New(psa.SystemAutotask, "webservices5.autotask.net")
	atDoc.PutProduct(cixa())
	atBytes := writeDoc(t, at, atDoc)

	tests := []struct {
		name     string
		path     string
		system   psa.System
		instance string
		want     string
	}{
		{"system", cw, psa.SystemAutotask, "webservices5.autotask.net", fmt.Sprintf(`export %q: the export belongs to PSA system "connectwise", not "autotask"; use one export file per PSA system`, cw)},
		{"instance", at, psa.SystemAutotask, "webservices14.autotask.net", fmt.Sprintf(`export %q: the export belongs to autotask instance "webservices5.autotask.net", not "webservices14.autotask.net"; use one export file per PSA instance`, at)},
	}
	for _, tt := range tests {
		_, err := NewStore(tt.path).Update(tt.system, tt.instance, func(d *Document) error {
			t.Errorf("%s: Update ran fn", tt.name)
			return nil
		})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: Update error\n got: %v\nwant: %s", tt.name, err, tt.want)
		}
	}
	if !bytes.Equal(readFile(t, cw), cwBytes) || !bytes.Equal(readFile(t, at), atBytes) {
		t.Error("a refused Update changed a file")
	}

	// An empty instance argument accepts the stored instance.
	d, err := NewStore(at).Update(psa.SystemAutotask, "", func(d *Document) error {
		d.PutCustomer(acme())
		return nil
	})
	if err != nil || d.PSA.Instance != "webservices5.autotask.net" || d.Revision != 1 {
		t.Errorf("Update with no instance = %+v, %v", d, err)
	}

	// An empty stored instance is filled in, even when nothing else changes.
	empty := filepath.Join(dir, "empty.json")
	writeDoc(t, empty, New(psa.SystemAutotask, ""))
	d, err = NewStore(empty).Update(psa.SystemAutotask, "webservices5.autotask.net", func(*Document) error { return nil })
	if err != nil || d.PSA.Instance != "webservices5.autotask.net" || d.Revision != 1 {
		t.Errorf("Update filling the instance = %+v, %v", d, err)
	}

	// fn may not move the document to another system.
	_, err = NewStore(at).Update(psa.SystemAutotask, "", func(d *Document) error {
		d.PSA.System = psa.SystemKaseyaBMS
		return nil
	})
	if want := fmt.Sprintf(`export %q: the update changed psa.system from "autotask" to "kaseya_bms", which is not allowed`, at); err == nil || err.Error() != want {
		t.Errorf("Update changing the system: error\n got: %v\nwant: %s", err, want)
	}
}

func TestStore_Update_fnError(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.json")
	before := writeDoc(t, path, testDocument())
	errStop := errors.New("contract 29684183 belongs to another company")
	_, err := NewStore(path).Update(psa.SystemAutotask, "", func(d *Document) error {
		d.PutCustomer(acme())
		return errStop
	})
	if err != errStop {
		t.Errorf("Update returned %v, want fn's error unchanged", err)
	}
	if !bytes.Equal(readFile(t, path), before) {
		t.Error("Update wrote after fn failed")
	}
}

func TestStore_Update_invalidResult(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.json")
	before := writeDoc(t, path, testDocument())
	_, err := NewStore(path).Update(psa.SystemAutotask, "", func(d *Document) error {
		d.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "new", CompanyID: "174"})
		d.Integration.Schedule = "hourly"
		return nil
	})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.File != path || len(ve.Problems) != 2 {
		t.Fatalf("Update returned %v, want a *ValidationError for %s with 2 problems", err, path)
	}
	if !bytes.Equal(readFile(t, path), before) {
		t.Error("Update wrote an invalid document")
	}
}

func TestStore_Update_keepsPermissions(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "x.json")
	writeDoc(t, path, testDocument())
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStore(path).Update(psa.SystemAutotask, "", func(d *Document) error {
		d.PutCustomer(acme())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after Update = %v, %v; want 0600", fi.Mode(), err)
	}
}

func TestStore_Update_symlink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "real.json")
	link := filepath.Join(dir, "link.json")
	writeDoc(t, target, New(psa.SystemAutotask, ""))
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStore(link).Update(psa.SystemAutotask, "", func(d *Document) error {
		d.PutCustomer(acme())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Update replaced the symbolic link: %v, %v", fi, err)
	}
	d, err := NewStore(target).Read()
	if err != nil || len(d.CustomerMappings) != 1 {
		t.Errorf("target after Update = %+v, %v", d, err)
	}
}

// TestStore_Update_concurrent is Terraform applying 200 mappings in
// parallel: each resource has its own Store value on the same path.
func TestStore_Update_concurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "psa-mappings.json")
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			s := NewStore(path) // a separate Store per goroutine, as per resource
			_, err := s.Update(psa.SystemAutotask, "webservices5.autotask.net", func(d *Document) error {
				m := acme()
				m.CustomerID = "customer-" + strconv.Itoa(i)
				d.PutCustomer(m)
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	d, err := NewStore(path).Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.CustomerMappings) != n || d.Revision != n {
		t.Errorf("after %d concurrent updates: %d customer mappings, revision %d", n, len(d.CustomerMappings), d.Revision)
	}
}

const helperEnv = "PSA_EXPORT_TEST_WRITER"

// TestStore_Update_crossProcess is two or more `terraform apply` runs on one
// export: several processes (this test binary, re-executed) each add
// entries concurrently, and none may be lost.
func TestStore_Update_crossProcess(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "psa-mappings.json")
	const procs, perProc = 4, 25
	cmds := make([]*exec.Cmd, procs)
	outs := make([]bytes.Buffer, procs)
	for p := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestStore_Update_helperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%d|%d", helperEnv, path, p, perProc))
		cmd.Stdout, cmd.Stderr = &outs[p], &outs[p]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[p] = cmd
	}
	for p, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("writer process %d: %v\n%s", p, err, outs[p].String())
		}
	}
	d, err := NewStore(path).Read()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.ProductMappings) != procs*perProc || d.Revision != procs*perProc {
		t.Errorf("after %d processes × %d updates: %d product mappings, revision %d", procs, perProc, len(d.ProductMappings), d.Revision)
	}
}

// TestStore_Update_helperProcess is the writer TestStore_Update_crossProcess
// starts. Run normally, it does nothing.
func TestStore_Update_helperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		return
	}
	var path string
	var proc, n int
	parts := bytes.Split([]byte(spec), []byte("|"))
	if len(parts) != 3 {
		t.Fatalf("bad %s=%q", helperEnv, spec)
	}
	path = string(parts[0])
	proc, _ = strconv.Atoi(string(parts[1]))
	n, _ = strconv.Atoi(string(parts[2]))
	// Goroutines inside each process too, so the in-process mutex and the
	// file lock work together.
	var wg sync.WaitGroup
	for g := range 5 {
		wg.Go(func() {
			for i := g; i < n; i += 5 {
				_, err := NewStore(path).Update(psa.SystemAutotask, "webservices5.autotask.net", func(d *Document) error {
					m := cixa()
					m.Product = fmt.Sprintf("P%d-%d", proc, i)
					d.PutProduct(m)
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

package main

import (
	"os"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/export/s3test"
)

// TestValidate_namesTheExportStoreOnce: psa-syncd validate and check say
// which export store they could not read once, as the daemon's log does,
// not once for the command and once more in the store's own words
// (`mapping export s3://…: export "s3://…": reading: …`).
func TestValidate_namesTheExportStoreOnce(t *testing.T) {
	e := newTestEnv(t, nil)
	cfg, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := s3test.Start(t)
	for _, store := range []string{srv.ObjectURL("prod/none-yet.json"), e.dir + "/none-yet.json"} {
		writeFile(t, e.cfgPath, strings.Replace(string(cfg), "export_path: mappings.json", "export_url: "+store, 1))
		for _, args := range [][]string{
			{"validate", "-config.file", e.cfgPath},
			{"check", "-config.file", e.cfgPath},
		} {
			code, stdout, stderr := runCmd(t, args...)
			out := stdout + stderr
			name := strings.SplitN(store, "?", 2)[0]
			if code != 1 || strings.Count(out, name) != 1 {
				t.Errorf("%s with the store %s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1 and the store named once", args[0], store, code, stdout, stderr)
			}
		}
	}
}

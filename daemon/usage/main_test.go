package usage

import (
	"os"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
)

// TestMain stops the PostgreSQL cluster that the tests over PostgreSQL
// share (pgtest.Shared starts it with the first of them, if any runs).
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

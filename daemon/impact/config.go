package impact

import (
	"slices"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/daemon"
)

// credentialVars are the environment variables that hold credentials in a
// psa-syncd configuration. A pull request from a fork runs without them.
var credentialVars = []string{
	"PSA_AUTOTASK_USERNAME", "PSA_AUTOTASK_SECRET", "PSA_AUTOTASK_INTEGRATION_CODE",
	"PSA_CONNECTWISE_PUBLIC_KEY", "PSA_CONNECTWISE_PRIVATE_KEY", "PSA_CONNECTWISE_CLIENT_ID",
	"PSA_KASEYA_BMS_USERNAME", "PSA_KASEYA_BMS_PASSWORD",
	"PSA_SOPHOS_CLIENT_ID", "PSA_SOPHOS_CLIENT_SECRET",
}

// Missing lists the credential variables a configuration needed but did not
// get, split by what they are for.
type Missing struct {
	PSA    []string
	Source []string
}

// LoadConfig loads a psa-syncd configuration like daemon.Load, except that
// credentials the environment does not provide are not an error: they are
// returned in Missing, so that the report can say which figures it could
// not compute. Everything else (a missing key, a bad value, a secret file
// that does not exist) fails as it does for daemon.Load.
func LoadConfig(path string, getenv func(string) string) (*daemon.Config, Missing, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cfg, err := daemon.Load(path, getenv)
	if err == nil {
		return cfg, Missing{}, nil
	}
	var missing Missing
	stand := func(name string) string {
		if v := getenv(name); v != "" || !slices.Contains(credentialVars, name) {
			return v
		}
		if strings.HasPrefix(name, "PSA_SOPHOS_") {
			missing.Source = append(missing.Source, name)
		} else {
			missing.PSA = append(missing.PSA, name)
		}
		// A stand-in that passes validation; it is never sent anywhere,
		// because a client whose credentials are missing is not built.
		return "unset@psa-syncd.invalid"
	}
	if cfg, err = daemon.Load(path, stand); err != nil {
		// With every credential standing in, what is left is a real error.
		return nil, Missing{}, err
	}
	slices.Sort(missing.PSA)
	slices.Sort(missing.Source)
	missing.PSA, missing.Source = slices.Compact(missing.PSA), slices.Compact(missing.Source)
	return cfg, missing, nil
}

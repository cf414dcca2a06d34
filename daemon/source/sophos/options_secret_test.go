package sophos_test

import (
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
)

// A bad auth or base URL is named without the password it carries:
// url.Parse's error repeats the whole value.
func TestNewClient_badURLHidesPassword(t *testing.T) {
	t.Parallel()
	for _, o := range []sophos.Option{
		sophos.WithAuthURL("https://u:SECRET%zz@id.sophos.com/api/v2/oauth2/token"),
		sophos.WithBaseURL("https://u:SECRET%zz@api.central.sophos.com/"),
		sophos.WithBaseURL("u:SECRET@api.central.sophos.com/"),
	} {
		_, err := sophos.NewClient(o)
		if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "URL") {
			t.Errorf("NewClient error = %v, want one naming the URL without its password", err)
		}
	}
}

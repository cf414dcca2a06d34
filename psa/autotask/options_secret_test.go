package autotask

import (
	"strings"
	"testing"
)

// A base or zone lookup URL that is not usable is named without the
// password it carries, parsed or not.
func TestNewClient_badURLHidesPassword(t *testing.T) {
	t.Parallel()
	for _, o := range []Option{
		WithBaseURL("https://u:SECRET%zz@webservices5.autotask.net/ATServicesRest/"),
		WithBaseURL("u:SECRET@webservices5.autotask.net/ATServicesRest/"),
		WithZoneLookupURL("u:SECRET@webservices.autotask.net"),
	} {
		_, err := NewClient(o)
		if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "URL") {
			t.Errorf("NewClient error = %v, want one naming the URL without its password", err)
		}
	}
}

package kaseyabms_test

import (
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
)

// A base URL or hostname that is not usable is named without the password
// it carries, parsed or not.
func TestNewClient_badURLHidesPassword(t *testing.T) {
	t.Parallel()
	for _, o := range []kaseyabms.Option{
		kaseyabms.WithBaseURL("https://u:SECRET%zz@api.bmsemea.kaseya.com/"),
		kaseyabms.WithBaseURL("u:SECRET@api.bmsemea.kaseya.com/"),
	} {
		_, err := kaseyabms.NewClient(o)
		if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "base URL") {
			t.Errorf("NewClient error = %v, want one naming the base URL without its password", err)
		}
	}
	for _, h := range []string{"https://u:SECRET@bmsemea.kaseya.com", "u:SECRET@bmsemea.kaseya.com", "u:SECRET@bmsemea.kaseya.com/x"} {
		_, err := kaseyabms.APIHost(h)
		if err == nil || strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "hostname") {
			t.Errorf("APIHost(%q) error = %v, want one naming the hostname without its password", h, err)
		}
	}
}

package connectwise

import (
	"strings"
	"testing"
)

// A site or base URL that is not usable is named without the password it
// carries, parsed or not.
func TestNewClient_badURLHidesPassword(t *testing.T) {
	t.Parallel()
	for _, o := range []Option{
		WithSite("https://u:SECRET%zz@na.myconnectwise.net"),
		WithSite("https://u:SECRET@na.myconnectwise.net/v2025_1/"),
		WithBaseURL("https://u:SECRET%zz@na.myconnectwise.net/v2025_1/apis/3.0/"),
		WithBaseURL("u:SECRET@na.myconnectwise.net/v2025_1/apis/3.0/"),
	} {
		_, err := NewClient(o)
		if err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("NewClient error = %v, want one without the password", err)
		}
	}
}

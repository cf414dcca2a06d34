package provider

import (
	"strings"
	"testing"
)

// The URL checks name a bad value without the password or query secret it
// may hold: url.Parse's error repeats the whole value.
func TestURLChecks_hideSecrets(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		check stringCheck
		value string
	}{
		{httpURL("https://example.com/"), "https://u:SECRET%zz@example.com/"},
		{httpURL("https://example.com/"), "https://example.com/%zz?token=SECRET"},
		{httpURL("https://example.com/"), "u:SECRET@example.com"},
		{connectWiseSite(), "https://u:SECRET%zz@na.myconnectwise.net"},
		{connectWiseSite(), "u:SECRET@na.myconnectwise.net/v2025_1"},
	} {
		err := tt.check.check(tt.value)
		if err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("check(%q) = %v, want an error without the secret", tt.value, err)
		}
	}
}

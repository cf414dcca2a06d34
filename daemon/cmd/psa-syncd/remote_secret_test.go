package main

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestRun_remoteAnswerEchoingTheToken: a proxy in front of psa-syncd that
// answers with a page quoting the request, Authorization header included,
// must not make the commands that ask a running daemon (-web.url) print
// the API token in their error, nor the password of a -web.url with user
// information, which Go sends as a basic credential.
func TestRun_remoteAnswerEchoingTheToken(t *testing.T) {
	t.Parallel()
	const (
		token    = "CANARY-api-token-5q9x"
		password = "CANARY-url-password-7r2k"
	)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "<html><body><h1>502 Bad Gateway</h1><pre>%s %s\nAuthorization: %s</pre></body></html>", r.Method, r.URL, r.Header.Get("Authorization"))
	}))
	t.Cleanup(proxy.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, token+"\n")
	web := "-web.url=" + proxy.URL
	for _, args := range [][]string{
		{"sync", web, "-web.token-file", tokenFile},
		{"plan", web, "-web.token-file", tokenFile},
		{"tickets", web, "-web.token-file", tokenFile},
		{"resolve", web, "-web.token-file", tokenFile, "-intent", "1", "-posted"},
		{"backup", web, "-web.token-file", tokenFile, "-output", filepath.Join(t.TempDir(), "backup.db")},
		{"status", strings.Replace(web, "http://", "http://ops:"+password+"@", 1)},
		// A user in -web.url sends the token as that user's basic password.
		{"sync", strings.Replace(web, "http://", "http://automation@", 1), "-web.token-file", tokenFile},
	} {
		code, stdout, stderr := runCmd(t, args...)
		if code != 1 || !strings.Contains(stderr, "502 Bad Gateway") || !regexp.MustCompile(`Authorization: (Bearer|Basic) \[REDACTED\]`).MatchString(stderr) {
			t.Errorf("psa-syncd %s against an echoing proxy: exit %d, stderr %q; want 1 naming the 502 and the redacted credential", args[0], code, stderr)
		}
		basic := base64.StdEncoding.EncodeToString([]byte("ops:" + password))
		basicToken := base64.StdEncoding.EncodeToString([]byte("automation:" + token))
		for _, secret := range []string{token, password, basic, basicToken} {
			if strings.Contains(stdout+stderr, secret) {
				t.Errorf("psa-syncd %s printed the credential %q:\n%s\n%s", args[0], secret, stdout, stderr)
			}
		}
	}
}

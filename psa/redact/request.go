package redact

import (
	"net/http"
	"strings"
)

// Request returns a Redactor for the credentials req sends, for the
// answer to it: its Authorization header's (a bearer token, or a basic
// credential and the password in it), and the user information of its
// URL, which Go sends as a basic credential. A server or a proxy may
// quote the request it answers, headers included.
func Request(req *http.Request) *Redactor {
	r := New()
	if _, cred, ok := strings.Cut(req.Header.Get("Authorization"), " "); ok {
		r.Add(strings.TrimSpace(cred))
	}
	if user, password, ok := req.BasicAuth(); ok {
		r.Add(password, user+":"+password)
	}
	if password, ok := req.URL.User.Password(); ok {
		r.Add(password, req.URL.User.Username()+":"+password)
	}
	return r
}

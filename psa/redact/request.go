package redact

import (
	"errors"
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

// ProxyCredentials returns the credentials that client c sends to the
// proxy of req: the password of the proxy URL's user information
// (HTTP_PROXY=http://user:password@proxy:3128), and user:password, whose
// base64 form is the Proxy-Authorization header. Go's transport adds that
// header to a plain http:// request itself, so that Request does not see
// it, and a proxy's error page may quote it. c's transport chooses the
// proxy: an *http.Transport's Proxy (nil: none), and for a nil c or
// transport, or one of another type (which may wrap Go's), the
// environment's (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), as Go's default
// transport does. nil without a proxy or without its password.
func ProxyCredentials(c *http.Client, req *http.Request) []string {
	proxy := http.ProxyFromEnvironment
	if c != nil {
		if t, ok := c.Transport.(*http.Transport); ok {
			proxy = t.Proxy
		}
	}
	if proxy == nil || req == nil || req.URL == nil {
		return nil
	}
	u, err := proxy(req)
	if err != nil || u == nil {
		return nil
	}
	password, ok := u.User.Password()
	if !ok {
		return nil
	}
	return []string{password, u.User.Username() + ":" + password}
}

// RedirectsWithoutCredentials returns a copy of hc that keeps the
// request's credentials from any other origin (scheme, host and port) a
// redirect names. Go's client strips only Authorization and Cookie, and
// those only for another host name: a client that sends its credentials in
// headers of its own (Autotask's Secret and ApiIntegrationCode,
// ConnectWise's clientId) would send them to whatever host a redirect
// names, and Authorization to another port of the same host or over plain
// http. A redirect to another origin is followed with only the headers in
// keptOnRedirect (so that a proxy's sign-in page is still recognised for
// what it is), unless it would send the request's body again (a 307 or
// 308 of a sign-in form, a write): that redirect is handed over as the
// answer, a 3xx the caller reports. hc's own CheckRedirect, if any, still
// applies.
func RedirectsWithoutCredentials(hc *http.Client) *http.Client {
	c := *hc
	next := hc.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if next != nil {
			if err := next(req, via); err != nil {
				return err
			}
		} else if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		first := via[0].URL
		if req.URL.Scheme == first.Scheme && strings.EqualFold(req.URL.Host, first.Host) {
			return nil
		}
		if req.GetBody != nil || (req.Body != nil && req.Body != http.NoBody) {
			return http.ErrUseLastResponse
		}
		for k := range req.Header {
			if !keptOnRedirect[k] {
				req.Header.Del(k)
			}
		}
		return nil
	}
	return &c
}

// keptOnRedirect are the headers RedirectsWithoutCredentials sends to
// another origin, in canonical form: none carries a credential.
var keptOnRedirect = map[string]bool{"Accept": true, "Accept-Language": true, "User-Agent": true}

package redact

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a password or a secret query value in a URL redacted by URL.
// It is what url.URL.Redacted writes.
const Mask = "xxxxx"

// URL returns rawURL for a message or a log, without its secrets: the
// password of its user information and of any URL in a query parameter
// (an S3 URL's endpoint=https://user:password@host) becomes Mask, and so
// does the value of a query parameter whose name says it is a secret
// (password, token, secret, signature, private_key, ...), in the query or
// in a fragment that holds parameters (#access_token=...).
//
// A setting that does not parse as a URL is never returned as it is: the
// parser splits it where the operator did not mean to, so a password with a
// "/" or a bad escape would show, and so would user information one slash
// short of a host ("https:/user:password@host"). Such a value keeps only its scheme and
// the host after the last "@", with everything else masked; one without
// "@", "?" or "#" holds neither user information nor a query and is
// returned unchanged.
func URL(rawURL string) string {
	return redactURL(rawURL, 0)
}

// maxNesting bounds the URLs in query parameters that URL redacts in turn.
const maxNesting = 3

func redactURL(rawURL string, depth int) string {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Opaque != "" && strings.ContainsAny(u.Opaque, "@?#")) || pathUserinfo(u) {
		// "user:password@host" without a scheme parses as the scheme
		// "user" with an opaque part, and "https:/user:password@host",
		// one slash short, as a URL without a host whose path holds
		// the password: not URLs the operator meant.
		return unparsed(rawURL)
	}
	changed := false
	if u.RawQuery != "" {
		if q := redactQuery(u.RawQuery, depth); q != u.RawQuery {
			u.RawQuery, changed = q, true
		}
	}
	// A fragment may carry parameters as a query does: an OAuth access
	// token copied from a browser's address bar.
	if raw := u.EscapedFragment(); raw != "" {
		if f := redactQuery(raw, depth); f != raw {
			u.RawFragment, changed = f, true
			if u.Fragment, err = url.PathUnescape(f); err != nil {
				u.Fragment, u.RawFragment = Mask, ""
			}
		}
	}
	if _, ok := u.User.Password(); ok {
		changed = true
	}
	if !changed {
		// As written, not as url.URL.String would spell it.
		return rawURL
	}
	return u.Redacted()
}

// pathUserinfo reports whether u, a URL with a scheme but no host, holds
// user information with a password in its path ("https:/user:pw@host"):
// a ":" before the path's last "@". A file's path with an "@"
// ("C:/Users/ops@example/m.json", "file:///srv/a@b") has no ":" there.
func pathUserinfo(u *url.URL) bool {
	if u.Scheme == "" || u.Host != "" || u.User != nil {
		return false
	}
	i := strings.LastIndexByte(u.Path, '@')
	return i >= 0 && strings.Contains(u.Path[:i], ":")
}

// unparsed masks a value that is not a URL: see URL.
func unparsed(s string) string {
	if !strings.ContainsAny(s, "@?#") {
		return s
	}
	scheme, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, rest = s[:i+3], s[i+3:]
	}
	masked := false
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest, masked = rest[i+1:], true
	}
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host = rest[:i]
	}
	out := scheme
	if masked {
		out += Mask + "@"
	}
	out += host
	if host != rest {
		out += "/" + Mask
	}
	return out
}

// secretParam matches the names of query parameters that hold secrets,
// the credentials of the PSAs and vendors by their own names among them
// (Autotask's ApiIntegrationCode, ConnectWise's public and private keys
// and clientId). target_session_attrs, sslkey (a path) and the like stay
// shown: the operator needs them.
var secretParam = regexp.MustCompile(`(?i)pass|pwd|^pw$|secret|token|signature|credential|session[_-]?id|` +
	`(api|access|private|public)[_-]?key|client[_-]?id|integration[_-]?code|^sig$|^key$|^code$|^auth`)

// redactQuery masks the secrets of a raw query and keeps the rest of it as
// it was written: the order and escaping of the other parameters.
func redactQuery(raw string, depth int) string {
	parts := strings.Split(raw, "&")
	for i, p := range parts {
		k, v, hasValue := strings.Cut(p, "=")
		if !hasValue {
			continue
		}
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if secretParam.MatchString(name) {
			parts[i] = k + "=" + Mask
			continue
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			if strings.Contains(v, "@") {
				parts[i] = k + "=" + Mask
			}
			continue
		}
		if !strings.Contains(value, "@") {
			continue
		}
		if depth >= maxNesting {
			parts[i] = k + "=" + Mask
			continue
		}
		if r := redactURL(value, depth+1); r != value {
			parts[i] = k + "=" + url.QueryEscape(r)
		}
	}
	return strings.Join(parts, "&")
}

// quoted matches the quoted parts of net/url's parse errors ("%zz", the
// port, a host character), which may be parts of a password.
var quoted = regexp.MustCompile(`\s*"(?:[^"\\]|\\.)*"`)

// URLError returns what err, an error of url.Parse, says is wrong, without
// the URL it quotes (*url.Error repeats the whole input, password
// included) or the parts of it that the reason quotes: an invalid port
// after the host is the start of a password that holds a "/". Errors that
// are not *url.Error are returned unchanged.
func URLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) || ue.Err == nil {
		return err
	}
	return errors.New(quoted.ReplaceAllString(ue.Err.Error(), ""))
}

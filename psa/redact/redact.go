package redact

import (
	"encoding/base64"
	"encoding/json"
	"html"
	"net/url"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Placeholder replaces a secret in redacted text.
const Placeholder = "[REDACTED]"

// MaxText is the most bytes of one vendor text that String keeps.
const MaxText = 1024

// keptSets is how many of the sets that Set replaced under a name stay
// redacted: a request sent with a token before its renewal may answer
// after it, quoting the old token.
const keptSets = 3

// MinSecret is the shortest value treated as a secret: redacting shorter
// ones would blank out ordinary words, so a Redactor leaves them in the
// text. Configuration checks refuse credentials that short (see TooShort):
// no PSA or vendor issues one, and one that short could not be kept out
// of the errors that quote it.
const MinSecret = 4

// TooShort reports whether secret is set but shorter than MinSecret, so
// that a Redactor would leave it in the text it redacts. Callers that take
// credentials from a configuration refuse such a value, naming the
// setting, never the value.
func TooShort(secret string) bool {
	return secret != "" && len(secret) < MinSecret
}

// Redactor replaces configured secrets, and the usual encodings of them, in
// text. The zero value and a nil *Redactor redact nothing but still
// truncate. A Redactor is safe for concurrent use.
type Redactor struct {
	mu     sync.RWMutex
	static []string            // from New and Add
	named  map[string][]string // from Set
	// replaced are the last keptSets sets that Set replaced, per name,
	// oldest first.
	replaced map[string][][]string
	// needles are every encoding of every secret, longest first, so that
	// an encoding wins over a part of it.
	needles []string
}

// New returns a Redactor for the given secrets; empty ones are ignored.
func New(secrets ...string) *Redactor {
	r := &Redactor{}
	r.Add(secrets...)
	return r
}

// Add adds secrets for the Redactor's lifetime.
func (r *Redactor) Add(secrets ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.static = append(r.static, secrets...)
	r.rebuild()
}

// Set replaces the secrets filed under name, such as the access and
// refresh tokens a client renews. The sets it replaced stay redacted, the
// last few of them, for the answers to requests sent before the renewal:
// renewing does not grow the Redactor beyond that.
func (r *Redactor) Set(name string, secrets ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.named == nil {
		r.named = map[string][]string{}
		r.replaced = map[string][][]string{}
	}
	if old, ok := r.named[name]; ok {
		kept := append(r.replaced[name], old)
		r.replaced[name] = kept[max(0, len(kept)-keptSets):]
	}
	r.named[name] = secrets
	r.rebuild()
}

func (r *Redactor) rebuild() {
	r.needles = r.needles[:0]
	add := func(secrets []string) {
		for _, s := range secrets {
			for _, n := range encodings(s) {
				if len(n) >= MinSecret && !slices.Contains(r.needles, n) {
					r.needles = append(r.needles, n)
				}
			}
		}
	}
	add(r.static)
	for _, secrets := range r.named {
		add(secrets)
	}
	for _, sets := range r.replaced {
		for _, secrets := range sets {
			add(secrets)
		}
	}
	slices.SortFunc(r.needles, func(a, b string) int { return len(b) - len(a) })
}

// encodings returns s as it may appear in a request or an answer: as is,
// URL-encoded (query and path forms), JSON-escaped, HTML-escaped (a proxy's
// error page quoting the request), and base64 (standard and URL alphabets,
// padded or not; the form of an HTTP Basic credential).
func encodings(s string) []string {
	if s == "" {
		return nil
	}
	out := []string{s, url.QueryEscape(s), url.PathEscape(s), html.EscapeString(s)}
	// JSON strings, with and without HTML escapes (\u0026 for &), and with
	// "/" escaped as some encoders do.
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	plain := strings.TrimSuffix(b.String(), "\n")
	html, _ := json.Marshal(s)
	for _, j := range []string{plain, string(html)} {
		j = j[1 : len(j)-1]
		out = append(out, j, strings.ReplaceAll(j, "/", `\/`))
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		out = append(out, enc.EncodeToString([]byte(s)))
	}
	return out
}

// String returns s with every secret replaced by Placeholder, cut to
// MaxText bytes (on a character boundary, marked "…[truncated]").
func (r *Redactor) String(s string) string {
	if r != nil {
		r.mu.RLock()
		for _, n := range r.needles {
			if strings.Contains(s, n) {
				s = strings.ReplaceAll(s, n, Placeholder)
			}
		}
		r.mu.RUnlock()
	}
	return Truncate(s, MaxText)
}

// Contains reports whether s holds one of the secrets, in any of the
// encodings that String replaces, however long s is.
func (r *Redactor) Contains(s string) bool {
	if r == nil {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, n := range r.needles {
		if strings.Contains(s, n) {
			return true
		}
	}
	return false
}

// Strings applies String to each element of ss, in place, and returns ss.
func (r *Redactor) Strings(ss []string) []string {
	for i, s := range ss {
		ss[i] = r.String(s)
	}
	return ss
}

// Truncate cuts s to at most n bytes on a character boundary, marking the
// cut.
func Truncate(s string, n int) string {
	const mark = "…[truncated]"
	if len(s) <= n {
		return s
	}
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

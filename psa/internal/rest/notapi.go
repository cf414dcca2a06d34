package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// maxTitle is the most characters of an HTML page's title a NotAPIError
// quotes.
const maxTitle = 60

var titlePattern = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)

// NotJSON returns a *psa.NotAPIError when body, the non-empty body of a
// 2xx answer to req that the client expected to be JSON, is not JSON at
// all (its first character opens no JSON value: an HTML page, plain
// text), and nil otherwise. A JSON answer that is cut short or has a
// field of the wrong type is no such answer: it stays a decoding error.
// r redacts the page's title, the only part of the page the error
// quotes.
func NotJSON(system psa.System, req *http.Request, resp *http.Response, body []byte, r *redact.Redactor) *psa.NotAPIError {
	b := bytes.TrimSpace(body)
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a byte order mark
	if len(b) == 0 {
		return nil
	}
	if b[0] == '{' || b[0] == '[' || json.Valid(b) {
		return nil
	}
	return NotAPI(system, req, resp, describePage(resp, b, r))
}

// NotAPI returns the *psa.NotAPIError of a 2xx answer resp to req that
// answer describes (see psa.NotAPIError.Answer).
func NotAPI(system psa.System, req *http.Request, resp *http.Response, answer string) *psa.NotAPIError {
	e := &psa.NotAPIError{System: system, Method: req.Method, URL: RedactURL(req.URL), Answer: answer}
	if resp != nil {
		e.Status = resp.StatusCode
		if resp.Request != nil && resp.Request.URL != nil {
			e.Host = resp.Request.URL.Host
		}
	}
	if e.Host == "" {
		e.Host = req.URL.Host
	}
	return e
}

// NotAPIShape is NotAPI for a JSON answer that lacks what the API's
// answer must hold, what (such as `"items"`).
func NotAPIShape(system psa.System, req *http.Request, resp *http.Response, what string) *psa.NotAPIError {
	return NotAPI(system, req, resp, "JSON without "+what)
}

// IsTopLevelMismatch reports whether err, from json.Unmarshal, says that
// the answer is a JSON value of another kind than the API's answer (an
// object where the API answers a list, or a list where it answers an
// object), not that a field inside it has the wrong type.
func IsTopLevelMismatch(err error) bool {
	var te *json.UnmarshalTypeError
	return errors.As(err, &te) && te.Field == ""
}

// describePage says what a body that is not JSON is: an HTML page with
// its title, or the content type.
func describePage(resp *http.Response, body []byte, r *redact.Redactor) string {
	ct := ""
	if resp != nil {
		ct = strings.TrimSpace(strings.SplitN(resp.Header.Get("Content-Type"), ";", 2)[0])
	}
	head := body
	if len(head) > 64<<10 {
		head = head[:64<<10]
	}
	lower := bytes.ToLower(head)
	isHTML := strings.Contains(ct, "html") || bytes.HasPrefix(lower, []byte("<!doctype html")) || bytes.Contains(lower, []byte("<html"))
	if !isHTML {
		if ct == "" {
			return "not JSON"
		}
		return fmt.Sprintf("not JSON (%s)", redact.Truncate(ct, 40))
	}
	m := titlePattern.FindSubmatch(head)
	if m == nil {
		return "an HTML page"
	}
	title := strings.Join(strings.Fields(html.UnescapeString(string(m[1]))), " ")
	title = r.String(title)
	if t := []rune(title); len(t) > maxTitle {
		title = string(t[:maxTitle]) + "…"
	}
	if title == "" {
		return "an HTML page"
	}
	return fmt.Sprintf("an HTML page titled %q", title)
}

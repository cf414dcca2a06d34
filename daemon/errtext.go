package daemon

import (
	"strings"
	"unicode/utf8"
)

// ShortErrorLen is the most runes ShortError returns.
const ShortErrorLen = 100

// packagePrefixes are the "pkg: " prefixes that Go error chains carry and an
// operator does not need in a table.
var packagePrefixes = map[string]bool{
	"daemon": true, "state": true, "source": true, "psa": true, "export": true, "backends": true,
	"autotask": true, "connectwise": true, "kaseyabms": true, "sophos": true,
}

// ShortError shortens an error message for a table cell or a status page
// row: it drops package prefixes, request lines with URLs and socket details
// ("read tcp 127.0.0.1:5->…") from the chain, keeps what failed and the final
// cause, and cuts the rest at ShortErrorLen runes. The full message stays in
// the JSON of the API and of -json.
func ShortError(msg string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if msg == "" {
		return ""
	}
	parts := strings.Split(msg, ": ")
	kept := make([]string, 0, len(parts))
	for _, p := range parts {
		switch {
		case packagePrefixes[p]:
		case strings.Contains(p, "://"):
		case isSocketDetail(p):
		default:
			kept = append(kept, p)
		}
	}
	if len(kept) == 0 {
		kept = parts[len(parts)-1:]
	}
	s := strings.Join(kept, ": ")
	if utf8.RuneCountInString(s) <= ShortErrorLen {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:ShortErrorLen-1])) + "…"
}

// isSocketDetail reports whether one link of an error chain is a net.OpError
// prefix ("read tcp a->b", "dial tcp host:port") or a bare operation ("read").
func isSocketDetail(p string) bool {
	op, rest, _ := strings.Cut(p, " ")
	switch op {
	case "read", "write", "dial", "lookup":
	default:
		return false
	}
	if rest == "" {
		return true
	}
	proto, _, _ := strings.Cut(rest, " ")
	return strings.HasPrefix(proto, "tcp") || strings.HasPrefix(proto, "udp") || strings.HasPrefix(proto, "unix")
}

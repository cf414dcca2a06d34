package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// README's Authentication paragraph names every endpoint that needs the
// API token: it goes on to call the others read-only and token-free, so an
// endpoint the table marks "token" but the paragraph leaves out (such as
// GET /api/v1/backup, a copy of the state database) reads as open.
func TestREADME_authenticationListsEveryTokenEndpoint(t *testing.T) {
	t.Parallel()
	readme := string(must(os.ReadFile(filepath.Join("..", "..", "..", "README.md"))))
	start := strings.Index(readme, "### HTTP endpoints")
	if start < 0 {
		t.Fatal("README.md has no HTTP endpoints section")
	}
	section := readme[start:]
	auth := strings.Index(section, "**Authentication.**")
	if auth < 0 {
		t.Fatal("README.md's HTTP endpoints section has no Authentication paragraph")
	}
	para := section[auth:]
	if end := strings.Index(para, "\n\n"); end > 0 {
		para = para[:end]
	}
	para = strings.Join(strings.Fields(para), " ")
	row := regexp.MustCompile("(?m)^\\| `((?:GET|POST|PUT|DELETE) [^`]+)` \\| token \\|")
	rows := row.FindAllStringSubmatch(section[:auth], -1)
	if len(rows) == 0 {
		t.Fatal("no endpoint with auth `token` in README.md's table")
	}
	for _, m := range rows {
		if !strings.Contains(para, "`"+m[1]+"`") {
			t.Errorf("README.md: %s needs the token (endpoint table) but is not in the Authentication paragraph, which calls every other endpoint read-only and token-free", m[1])
		}
	}
}

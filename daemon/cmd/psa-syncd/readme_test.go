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

// TestREADME_sectionReferences: every README section that the examples,
// the deployment files, the alert rules and the generated docs send a reader
// to by name (README: "High availability with PostgreSQL", "Backup and
// restore" in README) is a heading of README.md, so that a renamed section
// leaves no comment pointing at nothing.
func TestREADME_sectionReferences(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "..")
	readme := string(must(os.ReadFile(filepath.Join(root, "README.md"))))
	headings := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(readme, -1) {
		headings[strings.TrimSpace(m[1])] = true
	}
	ref := regexp.MustCompile(`README(?:\.md)?(?:'s)?[:,]?\s+"([^"\n]{4,80})"|"([^"\n]{4,80})"\s+(?:in|of|under)\s+(?:README(?:\.md)?|the (?:daemon )?documentation)\b`)
	found := 0
	for _, dir := range []string{"examples", "docs"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src := string(must(os.ReadFile(path)))
			for _, m := range ref.FindAllStringSubmatch(src, -1) {
				found++
				name := strings.Join(strings.Fields(m[1]+m[2]), " ")
				if !headings[name] {
					t.Errorf("%s refers to README section %q, which README.md has no heading for", path, name)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if found == 0 {
		t.Error("found no reference to a README section in examples/ and docs/; the pattern no longer matches how they are written")
	}
}

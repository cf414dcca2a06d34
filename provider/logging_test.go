package provider

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-log/tflogtest"
)

func TestTflogHandler(t *testing.T) {
	t.Parallel()

	var out bytes.Buffer
	ctx := maskSecrets(tflogtest.RootLogger(context.Background(), &out), []string{"hunter2"})
	logger := newBackendLogger(ctx).With("system", "autotask").WithGroup("req")
	logger.Warn("Retrying Autotask request", "attempt", 2, "err", errors.New("429 for secret hunter2"))
	logger.Debug("Discovered Autotask zone", "zone", "webservices5")

	entries, err := tflogtest.MultilineJSONDecode(&out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("got %d log entries, want 2: %v", len(entries), entries)
	}
	warn := entries[0]
	if warn["@level"] != "warn" || warn["@message"] != "Retrying Autotask request" {
		t.Errorf("first entry = %v, want a warn line", warn)
	}
	if warn["system"] != "autotask" || warn["req.attempt"] != float64(2) {
		t.Errorf("first entry fields = %v, want system and req.attempt", warn)
	}
	if got, _ := warn["req.err"].(string); strings.Contains(got, "hunter2") || got == "" {
		t.Errorf("req.err = %q, want the error with the secret masked", got)
	}
	if entries[1]["@level"] != "debug" {
		t.Errorf("second entry level = %v, want debug", entries[1]["@level"])
	}
}

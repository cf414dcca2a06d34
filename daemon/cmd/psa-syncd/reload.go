package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// cmdReload has a running daemon reload its config file and the mapping
// export (POST /-/reload). SIGHUP does the same, but the container image
// has no shell and no kill to send it with (kubectl exec), and of several
// replicas each is reloaded at its own address.
func cmdReload(ctx context.Context, e *env, args []string) int {
	var (
		// -config.file is taken, and ignored with a warning, as by every
		// command with -web.url: scripts pass it to all of them.
		cf commonFlags
		rf remoteFlags
	)
	fs := newFlagSet(e, "reload", "Have a running psa-syncd reload its config file and the mapping export, as SIGHUP does\n"+
		"(POST /-/reload, with the API token), and say whether it took them: the way to reload\n"+
		"psa-syncd in a container without a shell (kubectl exec), or one replica of several at its\n"+
		"own address. The exit code is 1 when it refused what it read (it keeps what it runs; the\n"+
		"error names the file and the key at fault).")
	cf.register(fs)
	rf.register(fs)
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	api, err := rf.client(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	if api == nil {
		fmt.Fprintln(e.stderr, "psa-syncd: reload needs -web.url: the running psa-syncd to reload (or send that process SIGHUP)")
		return 2
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api.base+"/-/reload", nil)
	if err != nil {
		return requestFailed(e, err)
	}
	setToken(req, api.token)
	resp, err := api.do(req, answerTimeout)
	if err != nil {
		return requestFailed(e, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return requestFailed(e, doJSONError(req, resp))
	}
	// "Reloaded config and mapping export."
	msg, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return requestFailed(e, err)
	}
	fmt.Fprintln(e.stdout, strings.TrimSpace(string(msg)))
	return 0
}

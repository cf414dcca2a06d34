package daemon

import (
	"fmt"
	"net"
	"net/http"

	"github.com/prometheus/exporter-toolkit/web"
)

// The listener's security comes from a web configuration file in the format
// every Prometheus exporter takes with --web.config.file
// (github.com/prometheus/exporter-toolkit): tls_server_config for TLS and
// client certificates, basic_auth_users for bcrypt-hashed basic
// authentication of every request, and http_server_config for response
// headers. exporter-toolkit reads the file again for every new TLS
// connection and every request, so renewed certificates and changed users
// take effect without a restart, as in Prometheus.
//
// The mutating endpoints still need the API token. With basic_auth_users
// set, the Authorization header carries the basic credentials, so the token
// is sent as the basic password instead (see requireToken): give the
// calling user a bcrypt hash of the token in basic_auth_users.

// validateWebConfig checks a web configuration file and the certificates it
// names; an empty path means plain HTTP without authentication.
func validateWebConfig(path string) error {
	if path == "" {
		return nil
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("daemon: web config file %q: %w", path, err)
	}
	return nil
}

// serve serves srv on ln as d's web configuration file says. It returns
// http.ErrServerClosed after Shutdown, like http.Server.Serve.
func (d *Daemon) serve(srv *http.Server, ln net.Listener) error {
	addrs := []string{ln.Addr().String()}
	return web.Serve(ln, srv, &web.FlagConfig{
		WebListenAddresses: &addrs,
		WebConfigFile:      &d.webConfigFile,
	}, d.logger.With("component", "web"))
}

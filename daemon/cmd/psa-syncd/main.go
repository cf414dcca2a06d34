// Command psa-syncd syncs vendor usage to PSA contract quantities. See the
// repository README for the configuration file, the HTTP API and the metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	commonversion "github.com/prometheus/common/version"

	"github.com/psa-sync/terraform-provider-psa/daemon"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3"; when
// it is empty the module version from the build info is used.
var version string

// revision is the VCS commit, set at build time with -ldflags
// "-X main.revision=$(git rev-parse HEAD)" (make daemon does); when it is
// empty the vcs.revision that `go build -buildvcs` stamps is used.
var revision string

func main() {
	setMemoryLimit(os.Getenv)
	stopProfiles := startProfiles()
	code := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stopProfiles()
	os.Exit(code)
}

// command is one psa-syncd subcommand.
type command struct {
	name    string
	summary string
	// run parses args with its own FlagSet and returns the exit code.
	run func(ctx context.Context, e *env, args []string) int
}

// env is what a command needs from the process; tests provide their own.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

var commands = []command{
	{"run", "run the daemon: scheduled passes, the HTTP API and /metrics", cmdRun},
	{"sync", "run one sync pass and exit (non-zero when it failed or was partial)", cmdSync},
	{"plan", "print the quantity changes the next pass would make", cmdPlan},
	{"check", "authenticate against the PSA and the usage source and say what works", cmdCheck},
	{"validate", "validate the config file and the mapping export", cmdValidate},
	{"status", "print the per-customer sync status and the writes awaiting review", cmdStatus},
	{"resolve", "settle a write awaiting review (Kaseya BMS) after checking the PSA", cmdResolve},
	{"reload", "have a running psa-syncd reload its config file and the mapping export (-web.url)", cmdReload},
	{"set-by-hand", "record that the quantities of the month that ended were set in the PSA by hand (ConnectWise)", cmdSetByHand},
	{"orphans", "list the orphaned lines (set by psa-syncd, no mapping writes them any more); -clear one once zeroed by hand", cmdOrphans},
	{"ledger", "print the quantity changes psa-syncd made (table, CSV or JSON)", cmdLedger},
	{"backup", "write a consistent copy of the state database, also while the daemon runs", cmdBackup},
	{"rebind", "record the PSA instance the config connects to as the state database's (after a refused pass)", cmdRebind},
	{"tickets", "run one ticket pass (Sophos alerts to PSA tickets) and exit; -dry-run prints it", cmdTickets},
	{"simulate", "serve a PSA simulator (Autotask, ConnectWise, Kaseya BMS) and the Sophos simulator on loopback ports", cmdSimulate},
	{"version", "print the version", cmdVersion},
}

// run is main without the process: it dispatches args to a subcommand and
// returns the exit code (0 success, 1 failure, 2 usage error, 3 the daemon
// of -web.url not reached).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdout: stdout, stderr: stderr, getenv: getenv}
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	name := strings.TrimLeft(args[0], "-")
	if name == "help" || name == "h" {
		if len(args) > 1 {
			// "psa-syncd help sync" is "psa-syncd sync --help".
			for _, c := range commands {
				if c.name == args[1] {
					return c.run(ctx, e, []string{"--help"})
				}
			}
			fmt.Fprintf(stderr, "psa-syncd: unknown command %q\n\n", args[1])
			printUsage(stderr)
			return 2
		}
		printUsage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, e, args[1:])
		}
	}
	fmt.Fprintf(stderr, "psa-syncd: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: psa-syncd <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	// The summaries start in one column, however long the longest name.
	width := 0
	for _, c := range commands {
		width = max(width, len(c.name))
	}
	for _, c := range commands {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'psa-syncd <command> --help' (or 'psa-syncd help <command>') for the flags of a command. Flags take one or two dashes.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Exit codes:")
	fmt.Fprintln(w, "  0  success")
	fmt.Fprintln(w, "  1  failure: a failed or partial pass, a customer that cannot be planned, a failed check,")
	fmt.Fprintln(w, "     an invalid config or export, an error the daemon of -web.url answered, or, with status")
	fmt.Fprintln(w, "     -exit-code, a customer whose last sync failed")
	fmt.Fprintln(w, "  2  usage error: an unknown or bad flag, flags that contradict each other")
	fmt.Fprintf(w, "  %d  the daemon of -web.url could not be reached or did not answer in time (for sync, also:\n", exitUnreachable)
	fmt.Fprintln(w, "     its pass did not end within -timeout; the pass goes on in the daemon)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Environment:")
	fmt.Fprintf(w, "  GOMEMLIMIT  soft memory limit of the Go runtime (default %dMiB; e.g. 200MiB, or off)\n", defaultMemoryLimit>>20)
}

// newFlagSet returns a FlagSet for a subcommand whose --help prints the
// summary and the flags to stdout.
func newFlagSet(e *env, name, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("psa-syncd "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: psa-syncd %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args; it returns -1 to continue, or the exit code (0 for
// --help, 2 for a usage error).
func parse(fs *flag.FlagSet, e *env, args []string) int {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(e.stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(e.stdout)
		fs.Usage()
		return 0
	case err != nil:
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n\n", err)
		fs.Usage()
		return 2
	case fs.NArg() > 0:
		fmt.Fprintf(e.stderr, "psa-syncd: unexpected argument %q\n\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	return -1
}

// commonFlags are the flags every command that reads the config has.
type commonFlags struct {
	configFile string
	logLevel   string
	logFormat  string
	// command is the subcommand's name, for messages.
	command string
	// allowEmpty is -state.allow-empty, for the commands that have it.
	allowEmpty bool
	// allowRestore is -state.allow-restore, for the commands that have it.
	allowRestore bool
}

// stateFlag names the first -state.allow-* flag given, or returns "".
// They confirm something about the state database the command opens, so
// they do not apply with -web.url, where the running daemon has opened it.
func (c *commonFlags) stateFlag() string {
	switch {
	case c.allowEmpty:
		return "-state.allow-empty"
	case c.allowRestore:
		return "-state.allow-restore"
	}
	return ""
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	c.command = strings.TrimPrefix(fs.Name(), "psa-syncd ")
	fs.StringVar(&c.configFile, "config.file", "psa-syncd.yml", "psa-syncd configuration `file`.")
	fs.StringVar(&c.logLevel, "log.level", "info", "Only log messages with the given severity or above: debug, info, warn, error.")
	fs.StringVar(&c.logFormat, "log.format", "logfmt", "Output format of log messages: logfmt or json.")
}

// logger builds the one logger of the process, writing to stderr.
func (c *commonFlags) logger(e *env) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("-log.level: unknown level %q: want debug, info, warn or error", c.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	journal := onJournal(e.stderr, e.getenv)
	switch c.logFormat {
	case "logfmt":
		out := e.stderr
		if journal {
			out = priorityWriter{out, []byte("level=")}
		}
		return slog.New(slog.NewTextHandler(out, opts)), nil
	case "json":
		// Durations as logfmt writes them ("1.5s"), not the JSON
		// handler's nanoseconds, which leave the reader to convert.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		out := e.stderr
		if journal {
			out = priorityWriter{out, []byte(`"level":"`)}
		}
		return slog.New(slog.NewJSONHandler(out, opts)), nil
	}
	return nil, fmt.Errorf("-log.format: unknown format %q: want logfmt or json", c.logFormat)
}

// setup builds the logger, loads the config and creates a Daemon (which opens
// the state database). The caller closes the Daemon.
func (c *commonFlags) setup(e *env, reg *prometheus.Registry) (*daemon.Daemon, *slog.Logger, int) {
	logger, err := c.logger(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return nil, nil, 2
	}
	cfg, err := daemon.Load(c.configFile, e.getenv)
	if err != nil {
		logger.Error("Error loading config", "err", err)
		return nil, nil, 1
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	d, err := daemon.New(cfg, c.configFile, daemon.Options{
		Logger:          logger,
		Registry:        reg,
		Version:         buildVersion(),
		Getenv:          e.getenv,
		AllowEmptyState: c.allowEmpty,
		AllowRestore:    c.allowRestore,
	})
	if err != nil {
		// Named after the command: "Error starting psa-syncd", run's
		// message, read as the daemon failing when sync run by hand
		// found the database locked by it.
		logger.Error("Error setting up psa-syncd "+c.command, "err", err)
		if hint := lockedHint(cfg, c.command, err); hint != "" {
			fmt.Fprintf(e.stderr, "psa-syncd: %s\n", hint)
		}
		return nil, nil, 1
	}
	return d, logger, -1
}

// closeDaemon closes d at the end of a command that set it up. Closing the
// state database can fail (the file lock or the file itself); that is logged
// and turns the exit code *rc into 1.
func closeDaemon(d *daemon.Daemon, logger *slog.Logger, rc *int) {
	if err := d.Close(); err != nil {
		logger.Error("Error closing the state database", "err", err)
		*rc = 1
	}
}

func cmdRun(ctx context.Context, e *env, args []string) int {
	var (
		cf            commonFlags
		listenAddress string
		webConfigFile string
		allowEmpty    bool
		allowRestore  bool
		watch         = daemon.DefaultWatchInterval
		shutdown      = daemon.DefaultShutdownTimeout
	)
	fs := newFlagSet(e, "run", "Run the daemon: scheduled and requested sync passes, the HTTP API and /metrics.\n"+
		"SIGHUP, POST /-/reload or `psa-syncd reload` reloads the config file and the mapping export; SIGINT or SIGTERM stops it gracefully.")
	cf.register(fs)
	fs.StringVar(&listenAddress, "web.listen-address", "", "Address to listen on for the HTTP API and metrics; overrides web.listen_address in the config file (default \"127.0.0.1:9810\", loopback only; \":9810\" listens on every interface).")
	fs.StringVar(&webConfigFile, "web.config.file", "", "Path to a web configuration `file` that enables TLS, client certificates or basic\nauthentication, in the format of every Prometheus exporter (exporter-toolkit). With\nbasic_auth_users, the mutating endpoints take the API token as the basic password, and\nGET /-/healthy and /-/ready without credentials are answered (for probes). With\nclient_auth_type RequireAndVerifyClientCert and replicas, give each standby a client\ncertificate the client_ca_file trusts in state.advertise_client_cert_file and\nstate.advertise_client_key_file: without it the active instance refuses its forwards.")
	fs.DurationVar(&watch, "export.poll-interval", watch, "How often to check the mapping export for changes: the file's time, size and content, or a conditional GET (If-None-Match) of an S3 object or another psa-syncd. With export_url: self, an export PUT to this psa-syncd takes effect at once, and the poll finds one PUT to another psa-syncd sharing the state database.")
	fs.DurationVar(&shutdown, "web.shutdown-timeout", shutdown, "How long to let a running pass and open requests finish on shutdown (a contract\nline write already sent then gets up to 60s more, so that its outcome is known).")
	fs.BoolVar(&allowEmpty, "state.allow-empty", false, allowEmptyHelp)
	fs.BoolVar(&allowRestore, "state.allow-restore", false, allowRestoreHelp)
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	// daemon.New takes 0 for the default: a 0 (or negative) given here
	// would be a stop at once, or no polling, silently made 30s or 5s.
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"export.poll-interval", watch}, {"web.shutdown-timeout", shutdown}} {
		if f.v <= 0 {
			fmt.Fprintf(e.stderr, "psa-syncd: -%s %s: must be positive\n", f.name, f.v)
			return 2
		}
	}
	// Checked as web.listen_address is when the config loads: not once
	// the state database is open and the listener fails.
	if listenAddress != "" {
		if err := daemon.CheckListenAddress(listenAddress); err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: -web.listen-address: %v\n", err)
			return 2
		}
	}
	logger, err := cf.logger(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	// Register for SIGHUP before any slow start-up work, so that a reload
	// requested meanwhile is not lost (or fatal).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// SIGINT and SIGTERM are logged when they come, not once the running
	// pass has finished (up to the shutdown timeout later).
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	term := make(chan os.Signal, 1)
	signal.Notify(term, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(term)
	go func() {
		select {
		case sig := <-term:
			name := "SIGTERM"
			if sig == os.Interrupt {
				name = "SIGINT"
			}
			logger.Info("Received "+name+", exiting gracefully", "shutdown_timeout", shutdown)
			stop()
		case <-ctx.Done():
		}
	}()

	logger.Info("Starting psa-syncd", "version", buildVersion(), "go", commonversion.GoVersion)
	cfg, err := daemon.Load(cf.configFile, e.getenv)
	if err != nil {
		logger.Error("Error loading config", "err", err)
		return 1
	}
	reg := newRegistry()
	d, err := daemon.New(cfg, cf.configFile, daemon.Options{
		Logger:          logger,
		Registry:        reg,
		Version:         buildVersion(),
		Getenv:          e.getenv,
		WatchInterval:   watch,
		ShutdownTimeout: shutdown,
		WebConfigFile:   webConfigFile,
		AllowEmptyState: allowEmpty,
		AllowRestore:    allowRestore,
		ListenAddress:   listenAddress,
		Check:           checker(cf.configFile, logger),
		Impact:          impacter(logger),
		// The running daemon says which export fields it reads beside a
		// file or S3 store's export, for the provider's plan.
		PublishExportFields: true,
	})
	if err != nil {
		logger.Error("Error starting psa-syncd", "err", err)
		return 1
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				logger.Info("Received SIGHUP, reloading")
				_ = d.Reload() // logged and recorded in metrics
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		logger.Error("psa-syncd stopped", "err", err)
		return 1
	}
	logger.Info("psa-syncd stopped")
	return 0
}

// allowEmptyHelp documents -state.allow-empty of run and sync.
const allowEmptyHelp = "Let passes write although the state database holds no ledger while the export maps Kaseya BMS\n" +
	"customers with usage sync on (whose quantities only the ledger records). Only for the first start;\n" +
	"after losing the database, restore it from a backup instead, or every line is posted again."

// allowRestoreHelp documents -state.allow-restore of run, sync and tickets.
const allowRestoreHelp = "Confirm, once, that the state database restored from a backup (psa-syncd backup, GET /api/v1/backup;\n" +
	"with PostgreSQL, pg_restore of a pg_dump, or a server on a new timeline: a point-in-time recovery, a promoted\n" +
	"replica, a failover) may be\n" +
	"written to: until then passes that write are refused (Autotask passes adjust no line, ConnectWise PSA passes\n" +
	"add none), since its ledger and ticket records lack what psa-syncd wrote after the backup. First check the\n" +
	"lines posted since the backup in Kaseya BMS (psa-syncd ledger), or that the lines the refusal names are\n" +
	"missing in the PSA (in Autotask, their quantities)."

// newRegistry returns the daemon's registry with the Go and process
// collectors; package daemon adds its own metrics and build info.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// buildVersion returns the version set with -ldflags, else the module
// version from the build info, else "devel". It also sets what the
// build-info metric (psa_sync_build_info) reports: the version, and the VCS
// revision from -ldflags or else the one `go build` stamps into the binary
// from the git checkout (with a "-dirty" suffix for uncommitted changes), and
// the commit time, whether or not -ldflags set the version. It works it out
// once: commands running in parallel (in-process tests) would otherwise write
// prometheus/common/version's globals while daemon.New reads them.
var buildVersion = sync.OnceValue(func() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if v == "" {
		v = "devel"
		if ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	if revision != "" {
		commonversion.Revision = revision
	}
	if ok {
		if rev := vcsRevision(bi.Settings); rev != "" && revision == "" {
			commonversion.Revision = rev
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				commonversion.BuildDate = s.Value
			}
		}
	}
	commonversion.Version = v
	return v
})

// vcsRevision returns the vcs.revision build setting, with "-dirty" when
// vcs.modified says the checkout had uncommitted changes, or "".
func vcsRevision(settings []debug.BuildSetting) string {
	var rev string
	dirty := false
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" && dirty {
		rev += "-dirty"
	}
	return rev
}

func cmdVersion(_ context.Context, e *env, args []string) int {
	fs := newFlagSet(e, "version", "Print the version of psa-syncd.")
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	fmt.Fprintf(e.stdout, "psa-syncd %s (%s)\n", buildVersion(), commonversion.GoVersion)
	return 0
}

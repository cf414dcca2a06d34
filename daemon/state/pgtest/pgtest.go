// Package pgtest runs a real PostgreSQL server for tests: a cluster made
// with initdb in a temporary directory and started with pg_ctl on a
// loopback port, from Debian's postgresql package (the GNUmakefile
// installs it when initdb is missing). When the tests run as root the
// server runs as the unprivileged user "nobody", which owns the data
// directory, since PostgreSQL refuses to run as root.
//
// One cluster is shared by the tests of a package: call Main from TestMain
// so that it is stopped when they end, and NewDatabase for a fresh database
// per test.
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.NewDatabase(t) // postgres://...@127.0.0.1:port/test_1
//		...
//	}
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running PostgreSQL server in a temporary directory.
type Cluster struct {
	dir     string // removed by Stop
	data    string
	bin     string
	port    int
	sys     *syscall.SysProcAttr // the user nobody when running as root, else nil
	dbs     atomic.Int64
	durable bool
}

// Option configures a cluster.
type Option func(*Cluster)

// Durable makes the server fsync its commits, as a production server does;
// by default test clusters skip fsync, which tests of the protocol (not of
// the disk) do not need. Benchmarks use it.
func Durable(c *Cluster) { c.durable = true }

// Bin returns the directory of the PostgreSQL server programs: the one
// holding initdb on PATH, else the newest /usr/lib/postgresql/*/bin.
func Bin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	if len(dirs) == 0 {
		return "", errors.New("pgtest: PostgreSQL's initdb is neither on PATH nor in /usr/lib/postgresql/*/bin: " +
			"install Debian's postgresql package (make postgres does)")
	}
	return filepath.Dir(dirs[0]), nil
}

func version(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

// Start creates and starts a new cluster. Stop it with Stop.
func Start(opts ...Option) (*Cluster, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, data: filepath.Join(dir, "data"), bin: bin}
	for _, o := range opts {
		o(c)
	}
	if c.sys, err = unprivileged(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if out, err := c.run("initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	for attempt := 0; ; attempt++ {
		c.port, err = freePort()
		if err == nil {
			err = c.start()
		}
		if err == nil {
			return c, nil
		}
		if attempt == 2 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

func (c *Cluster) start() error {
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c max_connections=200", c.port, c.dir)
	if !c.durable {
		opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	}
	out, err := c.run("pg_ctl", "start", "-w", "-t", "60", "-D", c.data, "-l", filepath.Join(c.dir, "server.log"), "-o", opts)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		return fmt.Errorf("pgtest: pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	return nil
}

// run runs a PostgreSQL program as the cluster's user.
func (c *Cluster) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, name)
	if _, err := os.Stat(path); err != nil {
		// A client program (pg_basebackup) beside only the server's
		// programs linked onto PATH.
		path = clientPath(name)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.SysProcAttr = c.sys
	return cmd.CombinedOutput()
}

// freePort returns a port below the kernel's ephemeral range that nothing
// listens on. Down and Up restart a server on its port: one from the
// ephemeral range (a listener on port 0) could be taken meanwhile by any
// test's listener or outgoing connection, and the restart then fails with
// "Address already in use".
func freePort() (int, error) {
	low := ephemeralLow()
	const first = 15000
	if low <= first+1000 {
		return anyPort()
	}
	for range 50 {
		port := first + rand.IntN(low-first)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return anyPort()
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux's
// default where it cannot be read).
func ephemeralLow() int {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				return n
			}
		}
	}
	return 32768
}

func anyPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil //nolint:forcetypeassert // a TCP listener's address
}

// Stop stops the server at once and removes its directory.
func (c *Cluster) Stop() error {
	out, err := c.run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", c.data)
	if rerr := os.RemoveAll(c.dir); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Down stops the server as an administrator's fast shutdown does (every
// session ends, the server refuses connections) and keeps its data, for
// Up to start it again: a restart, or a managed database's failover.
func (c *Cluster) Down() error {
	out, err := c.run("pg_ctl", "stop", "-m", "fast", "-w", "-D", c.data)
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Up starts again, on the same port, a server that Down stopped.
func (c *Cluster) Up() error { return c.start() }

// URL returns the connection URL of a database of the cluster.
func (c *Cluster) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, database)
}

// Port returns the server's port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// CreateDatabase creates a new, empty database and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("test_%d", c.dbs.Add(1))
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: creating database %s: %w", name, err)
	}
	return c.URL(name), nil
}

var (
	sharedMu  sync.Mutex
	shared    *Cluster
	sharedErr error
)

// Shared returns the cluster shared by the tests of this process, starting
// it on first use. Main stops it.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = Start()
	}
	if sharedErr != nil {
		tb.Fatal(sharedErr)
	}
	return shared
}

// NewDatabase returns the URL of a new database on the shared cluster.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := Shared(tb).CreateDatabase(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return url
}

// Main runs the tests and then stops the shared cluster, if one was
// started. Use it as os.Exit(pgtest.Main(m)) in TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		if err := shared.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
		shared = nil
	}
	return code
}

// New starts a cluster for one test and stops it when the test ends; for
// packages whose tests do not share one through Main.
func New(tb testing.TB, opts ...Option) *Cluster {
	tb.Helper()
	c, err := Start(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return c
}

// PromotedCopy takes a base backup of c (pg_basebackup, with the WAL it
// needs), starts it as a standby that follows no primary, and promotes it:
// what a promoted asynchronous replica, or a point-in-time recovery, is to
// a database of c. The copy holds what c had committed when PromotedCopy
// was called, nothing c commits later, and runs on a new timeline. Its
// databases have the same names as c's (URL); the test's cleanup stops it.
func (c *Cluster) PromotedCopy(tb testing.TB) *Cluster {
	tb.Helper()
	// Not tb.TempDir: the server runs as nobody when the tests run as
	// root (unprivileged), and could not reach a directory inside the
	// test's, which only root may enter; Start makes its own the same way.
	dir, err := os.MkdirTemp("", "pgtest-") //nolint:usetesting // see above
	if err != nil {
		tb.Fatal(err)
	}
	cp := &Cluster{dir: dir, data: filepath.Join(dir, "data"), bin: c.bin, durable: c.durable}
	if cp.sys, err = unprivileged(dir); err != nil {
		os.RemoveAll(dir)
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			tb.Error(err)
		}
	})
	if out, err := cp.run("pg_basebackup", "-h", c.dir, "-p", strconv.Itoa(c.port), "-U", "postgres",
		"-D", cp.data, "-X", "stream", "-c", "fast", "--no-sync"); err != nil {
		tb.Fatalf("pgtest: pg_basebackup: %v\n%s", err, out)
	}
	// The server only checks that the file is there.
	if err := os.WriteFile(filepath.Join(cp.data, "standby.signal"), nil, 0o600); err != nil {
		tb.Fatalf("pgtest: writing standby.signal: %v", err)
	}
	if cp.port, err = freePort(); err == nil {
		err = cp.start()
	}
	if err != nil {
		tb.Fatal(err)
	}
	if out, err := cp.run("pg_ctl", "promote", "-w", "-t", "60", "-D", cp.data); err != nil {
		tb.Fatalf("pgtest: pg_ctl promote: %v\n%s", err, out)
	}
	return cp
}

// CommitWaitsForAStandby reports whether a commit through db waits for a
// synchronous standby (the server shows it waiting in SyncRep): it inserts
// a row into the table sync_probe, which the caller creates, and once the
// server shows the commit waiting cancels that wait, which commits the row
// locally. For tests of a cluster whose synchronous standby is gone.
func CommitWaitsForAStandby(tb testing.TB, db *sql.DB) bool {
	tb.Helper()
	ctx := tb.Context()
	conn, err := db.Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	var pid int
	if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := conn.ExecContext(ctx, `INSERT INTO sync_probe VALUES (1)`)
		done <- err
	}()
	for {
		select {
		case err := <-done:
			if err != nil {
				tb.Fatal(err)
			}
			return false
		default:
		}
		var waiting bool
		if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep')`, pid).Scan(&waiting); err != nil {
			tb.Fatal(err)
		}
		if waiting {
			if _, err := db.ExecContext(ctx, `SELECT pg_cancel_backend($1)`, pid); err != nil {
				tb.Fatal(err)
			}
			if err := <-done; err != nil {
				tb.Fatalf("the probe's commit, its wait for the standby cancelled = %v; want committed locally", err)
			}
			return true
		}
	}
}

// Dump dumps the database at url with pg_dump in its custom format, as
// README's backup procedure says, and returns the dump's file.
func Dump(tb testing.TB, url string) string {
	tb.Helper()
	dump := filepath.Join(tb.TempDir(), "psa-syncd.dump")
	client(tb, "pg_dump", "-Fc", "-f", dump, "-d", url)
	return dump
}

// Restore restores dump (Dump) into the database at url with pg_restore
// --clean --if-exists, as README's restore procedure says: into the
// database it was dumped from, or another one.
func Restore(tb testing.TB, dump, url string) {
	tb.Helper()
	client(tb, "pg_restore", "--clean", "--if-exists", "-d", url, dump)
}

// client runs a PostgreSQL client program, from the server's directory
// (Bin), else from PATH (a pg_dump older than the server refuses to dump
// it); a failure ends the test.
func client(tb testing.TB, name string, args ...string) {
	tb.Helper()
	cmd := exec.Command(clientPath(name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("pgtest: %s: %v\n%s", name, err, out)
	}
}

// clientPath is the path of a PostgreSQL client program: in the server's
// directory (Bin) if it is there, else name, looked up on PATH.
func clientPath(name string) string {
	if bin, err := Bin(); err == nil {
		if _, err := os.Stat(filepath.Join(bin, name)); err == nil {
			return filepath.Join(bin, name)
		}
	}
	return name
}

// Package s3test starts a real S3-compatible server, versitygw, on a
// loopback port for tests of the S3 export store.
//
// versitygw (Apache-2.0) is installed into ./bin by the GNUmakefile
// (make versitygw, which make test depends on), and the Makefile points the
// VERSITYGW environment variable at it. Without the variable, Start looks
// for bin/versitygw in the module root.
//
// Usage:
//
//	srv := s3test.Start(t)
//	url := srv.ObjectURL("ci/psa-mappings.json")
//	// s3://psa-export/ci/psa-mappings.json?endpoint=http://127.0.0.1:41234&region=us-east-1&use_path_style=true
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Credentials of every server Start starts. They are the root account of a
// throw-away server on a loopback port.
const (
	AccessKey = "psa-sync-test"
	SecretKey = "psa-sync-test-secret"
	// Bucket is the bucket Start creates.
	Bucket = "psa-export"
	// Region is the region the object URLs name.
	Region = "us-east-1"
)

// startTimeout bounds the wait for versitygw to accept connections.
const startTimeout = 60 * time.Second

// Server is a running versitygw.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:PORT.
	Endpoint string
	// Dir is the directory versitygw keeps its buckets in.
	Dir string
}

var credentialsOnce sync.Once

// Start starts versitygw with an empty posix directory, creates Bucket and
// stops the server when the test ends. It sets AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY to AccessKey and SecretKey for the process, so the
// standard AWS credential chain of the code under test finds them; the
// values are the same for every server, so parallel tests agree.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := binary()
	if err != nil {
		tb.Fatal(err)
	}
	credentialsOnce.Do(func() {
		for k, v := range map[string]string{
			"AWS_ACCESS_KEY_ID": AccessKey, "AWS_SECRET_ACCESS_KEY": SecretKey,
			"AWS_EC2_METADATA_DISABLED": "true",
		} {
			// For the whole process, once: the servers of parallel tests
			// share them, and tb.Setenv refuses parallel tests.
			if err := os.Setenv(k, v); err != nil { //nolint:usetesting // see above
				tb.Fatal(err)
			}
		}
	})

	dir := tb.TempDir()
	addr, err := freeAddr()
	if err != nil {
		tb.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "--port", addr, "posix", dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+AccessKey, "ROOT_SECRET_KEY="+SecretKey)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("s3test: starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	if err := waitListening(addr, exited); err != nil {
		tb.Fatalf("s3test: versitygw did not start: %v\n%s", err, out.String())
	}
	s := &Server{Endpoint: "http://" + addr, Dir: dir}
	if err := s.createBucket(tb.Context(), Bucket); err != nil {
		tb.Fatalf("s3test: %v\n%s", err, out.String())
	}
	return s
}

// ObjectURL returns the export URL of key in Bucket on s.
func (s *Server) ObjectURL(key string) string {
	q := url.Values{"endpoint": {s.Endpoint}, "region": {Region}, "use_path_style": {"true"}}
	return "s3://" + Bucket + "/" + key + "?" + q.Encode()
}

// binary finds the versitygw executable.
func binary() (string, error) {
	if p := os.Getenv("VERSITYGW"); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "bin", "versitygw")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("s3test: versitygw is not installed: run `make versitygw` (make test does), or set VERSITYGW to its path")
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("s3test: no go.mod above the working directory, and VERSITYGW is not set")
		}
		dir = parent
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago. versitygw takes its port on the command line, so the port is
// released before versitygw binds it; another process taking it in between
// makes Start fail clearly rather than talk to the wrong server.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-exited:
			return errors.New("versitygw exited")
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// createBucket creates a bucket with a signed PUT, the one S3 call the
// helper makes itself.
func (s *Server) createBucket(ctx context.Context, name string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, s.Endpoint+"/"+name, nil)
	if err != nil {
		return err
	}
	if err := sign(req, nil); err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("creating bucket %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("creating bucket %s: %s", name, resp.Status)
	}
	return nil
}

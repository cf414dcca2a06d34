package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/export/s3test"
)

// Export store benchmark settings: an apply of benchMappings mappings with
// Terraform's default parallelism, each resource reading the export when
// planned and writing it when created, against a store benchStoreLatency
// away.
const (
	benchMappings     = 1000
	benchParallelism  = 10
	benchStoreLatency = 20 * time.Millisecond
)

// BenchmarkExportStore applies benchMappings customer mappings to each
// export store, with benchStoreLatency added to every request to the S3
// and psa-syncd stores, and prints per store
//
//	BENCH export-store <store> mappings=1000 requests=N wall=Xs file_wall=Ys ratio=X/Y
//
// where file_wall is the same apply to a local file. The goal is a ratio of
// at most 2 for S3 and psa-syncd: concurrent writes of one apply share a
// compare-and-swap, and each version is read once.
func BenchmarkExportStore(b *testing.B) {
	for b.Loop() {
		fileWall, _ := benchApply(b, export.NewFileBackend(filepath.Join(b.TempDir(), "psa-mappings.json")), nil)
		fmt.Printf("BENCH export-store file mappings=%d requests=0 wall=%.2fs file_wall=%.2fs ratio=1.00\n",
			benchMappings, fileWall.Seconds(), fileWall.Seconds())

		srv := s3test.Start(b)
		s3URL, s3Requests := latencyProxy(b, srv.Endpoint)
		// The object on versitygw, through the proxy.
		proxied := (&s3test.Server{Endpoint: s3URL}).ObjectURL("bench/psa-mappings.json")
		b3, err := export.OpenBackend(b.Context(), proxied, export.BackendOptions{})
		if err != nil {
			b.Fatal(err)
		}
		reportStore(b, "s3", b3, s3Requests, fileWall)

		e := dtSetup(b, dtOptions{token: dtToken, exportURL: ExportSelf, noExport: true})
		api := httptest.NewServer(e.d.Handler())
		b.Cleanup(api.Close)
		apiURL, apiRequests := latencyProxy(b, api.URL)
		bp, err := export.NewHTTPBackend(apiURL, dtToken, nil)
		if err != nil {
			b.Fatal(err)
		}
		reportStore(b, "psa-syncd", bp, apiRequests, fileWall)
	}
}

func reportStore(b *testing.B, name string, be export.Backend, requests *atomic.Int64, fileWall time.Duration) {
	wall, doc := benchApply(b, be, requests)
	if len(doc.CustomerMappings) != benchMappings {
		b.Fatalf("%s: export holds %d mappings, want %d", name, len(doc.CustomerMappings), benchMappings)
	}
	fmt.Printf("BENCH export-store %s mappings=%d requests=%d wall=%.2fs file_wall=%.2fs ratio=%.2f\n",
		name, benchMappings, requests.Load(), wall.Seconds(), fileWall.Seconds(), wall.Seconds()/fileWall.Seconds())
}

// benchApply applies benchMappings mappings the way a provider process
// does: benchParallelism at a time, each resource reading the export (its
// plan) and then adding its mapping (its Create). It returns the wall time
// and the export as stored afterwards.
func benchApply(b *testing.B, be export.Backend, requests *atomic.Int64) (time.Duration, *export.Document) {
	if requests != nil {
		requests.Store(0)
	}
	c := export.NewClient(be)
	sem := make(chan struct{}, benchParallelism)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range benchMappings {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, _, err := c.Read(b.Context()); err != nil && !isNotExist(err) {
				b.Error(err)
				return
			}
			id := fmt.Sprintf("bench-%04d", i)
			_, err := c.Update(b.Context(), psa.SystemAutotask, "", func(d *export.Document) error {
				// psa-syncd refuses an export whose ids are not Autotask ids.
				d.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: id, CompanyID: "1", ContractID: strconv.Itoa(1000 + i), UsageSync: true})
				return nil
			})
			if err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	doc, _, err := export.NewClient(be).Read(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	return wall, doc
}

// latencyProxy returns the URL of a reverse proxy to target that delays
// every request by benchStoreLatency, and its request counter.
func latencyProxy(b *testing.B, target string) (string, *atomic.Int64) {
	u, err := url.Parse(target)
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		time.Sleep(benchStoreLatency)
		proxy.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	return srv.URL, &n
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImage builds the image tarball as `go run` does and inspects it as a
// container runtime would: the configuration (entrypoint, user, exposed
// port, volume), the one layer's files and owners, and the binary, which
// must be static and run. A second build must give the same digest.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "image.tar")
	if err := build(out, "psa-syncd:0.1.0-test", "0.1.0-test", runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform = %s/%s, want linux/%s", cf.OS, cf.Architecture, runtime.GOARCH)
	}
	want := v1.Config{
		Entrypoint:   []string{"/usr/local/bin/psa-syncd", "run"},
		Cmd:          []string{"-config.file=/etc/psa-syncd/psa-syncd.yml"},
		User:         "65532:65532",
		WorkingDir:   "/var/lib/psa-syncd",
		ExposedPorts: map[string]struct{}{"9810/tcp": {}},
		Volumes:      map[string]struct{}{"/var/lib/psa-syncd": {}},
	}
	got := cf.Config
	labels := got.Labels
	got.Labels = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config = %+v\nwant     %+v", got, want)
	}
	if labels["org.opencontainers.image.version"] != "0.1.0-test" {
		t.Errorf("version label = %q, want 0.1.0-test", labels["org.opencontainers.image.version"])
	}

	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1 on an empty base", len(layers))
	}
	files := layerFiles(t, layers[0])
	state, ok := files["var/lib/psa-syncd/"]
	if !ok || state.hdr.Uid != 65532 || state.hdr.Gid != 65532 || state.hdr.Mode != 0o700 {
		t.Errorf("state directory = %+v, want owned by 65532 with mode 0700", state.hdr)
	}
	if p := files["etc/passwd"]; !strings.Contains(string(p.content), "psa-syncd:x:65532:65532:") {
		t.Errorf("/etc/passwd = %q, want the psa-syncd user 65532", p.content)
	}
	bin, ok := files["usr/local/bin/psa-syncd"]
	if !ok || bin.hdr.Mode != 0o755 {
		t.Fatalf("/usr/local/bin/psa-syncd = %+v, want an executable", bin.hdr)
	}
	f, err := elf.NewFile(bytes.NewReader(bin.content))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("psa-syncd has a dynamic loader (PT_INTERP): it would not run on an empty base")
		}
	}
	exe := filepath.Join(dir, "psa-syncd")
	if err := os.WriteFile(exe, bin.content, 0o755); err != nil {
		t.Fatal(err)
	}
	if v, err := exec.Command(exe, "version").CombinedOutput(); err != nil || !strings.Contains(string(v), "0.1.0-test") {
		t.Errorf("psa-syncd version from the image: %v\n%s", err, v)
	}

	again := filepath.Join(dir, "again.tar")
	if err := build(again, "psa-syncd:0.1.0-test", "0.1.0-test", runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
	img2, err := tarball.ImageFromPath(again, nil)
	if err != nil {
		t.Fatal(err)
	}
	d1, err1 := img.Digest()
	d2, err2 := img2.Digest()
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Errorf("two builds of the same source gave digests %s and %s, want one", d1, d2)
	}
}

func TestBuild_badTag(t *testing.T) {
	err := build(filepath.Join(t.TempDir(), "x.tar"), "Not A Tag", "dev", "amd64")
	if err == nil || !strings.Contains(err.Error(), `-tag "Not A Tag"`) {
		t.Errorf("build with a bad tag: %v, want an error naming the tag", err)
	}
}

type layerFile struct {
	hdr     *tar.Header
	content []byte
}

func layerFiles(t *testing.T, l v1.Layer) map[string]layerFile {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]layerFile{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = layerFile{hdr: hdr, content: content}
	}
}

// TestREADME_quickStart checks README's `podman run` of the image against
// the image: the port it publishes is the one psa-syncd is told to listen
// on, on every interface (the example configurations listen on loopback,
// unreachable through -p), its arguments repeat the image's -config.file
// (they replace the image's Cmd), and the credentials are mounted with U,
// so that the image's user can read files of mode 0600.
func TestREADME_quickStart(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, cmd, ok := strings.Cut(string(readme), "\npodman run ")
	if !ok {
		t.Fatal("README.md has no `podman run` of the image")
	}
	cmd, _, _ = strings.Cut(cmd, "\n```")
	args := strings.Fields(strings.ReplaceAll(cmd, "\\\n", " "))
	image := slices.IndexFunc(args, func(a string) bool { return strings.HasPrefix(a, "psa-syncd:") })
	if image < 0 {
		t.Fatalf("README's podman run names no psa-syncd image: %q", args)
	}
	flags, opts := args[image+1:], args[:image]
	publish := strings.TrimSuffix(port, "/tcp")
	if !slices.Contains(opts, publish+":"+publish) {
		t.Errorf("README's podman run options %q do not publish port %s", opts, publish)
	}
	if len(flags) > 0 && flags[0] != "-config.file="+configPath {
		t.Errorf("README's podman run arguments %q: want -config.file=%s first, since they replace the image's Cmd", flags, configPath)
	}
	if !slices.Contains(flags, "-web.listen-address=:"+publish) {
		t.Errorf("README's podman run arguments %q lack -web.listen-address=:%s: the example configurations listen on 127.0.0.1, which -p cannot reach", flags, publish)
	}
	for _, o := range opts {
		if strings.Contains(o, ":/etc/psa-syncd/credentials:") && !slices.Contains(strings.Split(o[strings.LastIndex(o, ":")+1:], ","), "U") {
			t.Errorf("README's credentials mount %s lacks U: the image's user cannot read credential files of mode 0600", o)
		}
	}
}

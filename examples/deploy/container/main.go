// Command container builds the psa-syncd container image without a
// container daemon: a static psa-syncd (CGO off) on an empty base, run as the
// unprivileged user 65532, with the state directory /var/lib/psa-syncd as a
// volume and the HTTP listener on port 9810. It writes the image as a
// tarball that `docker load`, `podman load` and `skopeo copy
// docker-archive:...` read, with go-containerregistry:
//
//	go run ./examples/deploy/container -o bin/psa-syncd-image.tar -version 0.1.0
//
// The image is reproducible: the same source and version give the same
// digest. See README.md, "Deploy psa-syncd".
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The image's layout and runtime configuration.
const (
	binaryPath = "/usr/local/bin/psa-syncd"
	configPath = "/etc/psa-syncd/psa-syncd.yml"
	stateDir   = "/var/lib/psa-syncd"
	uid        = 65532
	port       = "9810/tcp"
)

func main() {
	var (
		out     = flag.String("o", "psa-syncd-image.tar", "Image tarball to write.")
		tag     = flag.String("tag", "", "Image reference recorded in the tarball; default psa-syncd:<version>.")
		version = flag.String("version", "dev", "Version compiled into psa-syncd and set as the image's version label.")
		goarch  = flag.String("goarch", "amd64", "Architecture to build for: amd64 or arm64.")
	)
	flag.Parse()
	if *tag == "" {
		*tag = "psa-syncd:" + *version
	}
	if err := build(*out, *tag, *version, *goarch); err != nil {
		fmt.Fprintf(os.Stderr, "container: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("Wrote %s (%s, linux/%s)\n", *out, *tag, *goarch)
}

// build compiles psa-syncd and writes the image tarball to out.
func build(out, tag, version, goarch string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", tag, err)
	}
	binary, err := compile(version, goarch)
	if err != nil {
		return err
	}
	img, err := image(binary, version, goarch)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}

// compile builds a static psa-syncd for linux/goarch from the module that
// holds this command and returns its content.
func compile(version, goarch string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "psa-syncd-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "psa-syncd")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+version,
		"-o", out, "github.com/psa-sync/terraform-provider-psa/daemon/cmd/psa-syncd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building psa-syncd: %w\n%s", err, msg)
	}
	return os.ReadFile(out)
}

// image assembles the image: one layer on an empty base.
func image(binary []byte, version, goarch string) (v1.Image, error) {
	layerTar, err := rootFS(binary)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goarch
	cf.Created = v1.Time{Time: time.Unix(0, 0).UTC()}
	cf.Config = v1.Config{
		Entrypoint: []string{binaryPath, "run"},
		Cmd:        []string{"-config.file=" + configPath},
		User:       fmt.Sprintf("%d:%d", uid, uid),
		// The state directory, a volume: with a read-only root file system
		// (examples/deploy/kubernetes) it is the one place SQLite can put its
		// temporary files (an index built by a migration, a large sort),
		// which it never writes next to the database but in /var/tmp,
		// /usr/tmp, /tmp or else the working directory. With none writable,
		// such a statement fails with "disk I/O error (6410)".
		WorkingDir:   stateDir,
		ExposedPorts: map[string]struct{}{port: {}},
		Volumes:      map[string]struct{}{stateDir: {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":       "psa-syncd",
			"org.opencontainers.image.description": "Syncs vendor usage to PSA contract quantities",
			"org.opencontainers.image.version":     version,
			"org.opencontainers.image.source":      "https://github.com/psa-sync/terraform-provider-psa",
			"org.opencontainers.image.licenses":    "MPL-2.0",
		},
	}
	return mutate.ConfigFile(img, cf)
}

// rootFS returns the layer: the binary, the directories it uses, and
// /etc/passwd and /etc/group entries for the unprivileged user, so that
// tools inside and outside the container show a name for it.
func rootFS(binary []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0).UTC()
	dir := func(path string, mode int64, owner int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(path, "/") + "/", Mode: mode, Uid: owner, Gid: owner, ModTime: epoch})
	}
	file := func(path string, mode int64, content []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(path, "/"), Mode: mode, Size: int64(len(content)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(content)
		return err
	}
	for _, d := range []string{"/etc", "/etc/psa-syncd", "/tmp", "/usr", "/usr/local", "/usr/local/bin", "/var", "/var/lib"} {
		mode := int64(0o755)
		if d == "/tmp" {
			mode = 0o1777
		}
		if err := dir(d, mode, 0); err != nil {
			return nil, err
		}
	}
	if err := dir(stateDir, 0o700, uid); err != nil {
		return nil, err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\npsa-syncd:x:%d:%d:psa-syncd:%s:/sbin/nologin\n", uid, uid, stateDir)
	group := fmt.Sprintf("root:x:0:\npsa-syncd:x:%d:\n", uid)
	if err := file("/etc/passwd", 0o644, []byte(passwd)); err != nil {
		return nil, err
	}
	if err := file("/etc/group", 0o644, []byte(group)); err != nil {
		return nil, err
	}
	if err := file(binaryPath, 0o755, binary); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

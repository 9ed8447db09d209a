package testenv_test

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/test/testenv"
)

// TestImages reads the images hack/images.sh builds from the Dockerfiles, as the
// runtime imports them (docker-archive): their entrypoint, their numeric non-root
// user, the CA bundle, and the PostgreSQL clients where the binaries look for them
// (/usr/lib/postgresql/<major>/bin; only 15 exists offline, the real images carry 12 to
// 17). That each starts on a read-only root filesystem is TestCluster's.
func TestImages(t *testing.T) {
	dir := testenv.BuildImages(t)
	cases := map[string]struct {
		entrypoint, cmd []string
		user            string
		files           []string
	}{
		"webhook": {entrypoint: []string{"/webhook"}, user: "65532:65532",
			files: []string{"webhook", "etc/ssl/certs/ca-certificates.crt"}},
		"initrestore": {entrypoint: []string{"/usr/local/bin/initrestore"}, user: "65532:65532",
			files: []string{"usr/local/bin/initrestore", "etc/ssl/certs/ca-certificates.crt",
				"usr/lib/postgresql/15/bin/pg_restore", "usr/lib/postgresql/15/bin/psql"}},
		"cronbackup": {entrypoint: []string{"/usr/local/bin/cronbackup"}, cmd: []string{"backup"}, user: "65532:65532",
			files: []string{"usr/local/bin/cronbackup", "etc/ssl/certs/ca-certificates.crt",
				"usr/lib/postgresql/15/bin/pg_dump", "usr/lib/postgresql/15/bin/pg_restore"}},
		"dbaccess": {entrypoint: []string{"/dbaccess"}, user: "65532:65532", files: []string{"dbaccess"}},
		"pause":    {entrypoint: []string{"/pause"}, user: "65535:65535", files: []string{"pause"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			img := readArchive(t, filepath.Join(dir, name+".tar"))
			if !slices.Equal(img.Config.Entrypoint, tc.entrypoint) || !slices.Equal(img.Config.Cmd, tc.cmd) {
				t.Errorf("entrypoint %q cmd %q, want %q %q", img.Config.Entrypoint, img.Config.Cmd, tc.entrypoint, tc.cmd)
			}
			if img.Config.User != tc.user {
				t.Errorf("user %q, want %q", img.Config.User, tc.user)
			}
			for _, f := range tc.files {
				mode, ok := img.files[f]
				if !ok {
					t.Errorf("%s is missing", f)
					continue
				}
				if !strings.HasSuffix(f, ".crt") && mode&0o111 == 0 {
					t.Errorf("%s is not executable (mode %o)", f, mode)
				}
			}
			// No mirror's name and no package lists are left in the images.
			for f := range img.files {
				if f == "etc/apt/sources.list" || strings.HasPrefix(f, "etc/apt/sources.list.d/") || strings.HasSuffix(f, "_Packages") {
					t.Errorf("%s is in the image", f)
				}
			}
		})
	}
}

type archiveImage struct {
	Config struct {
		Entrypoint []string `json:"Entrypoint"`
		Cmd        []string `json:"Cmd"`
		User       string   `json:"User"`
	} `json:"config"`
	files map[string]int64 // path (without leading /) → mode, over all layers
}

// readArchive reads a docker-archive tar: manifest.json names the config and the
// layers, each layer a tar of its own.
func readArchive(t *testing.T, file string) *archiveImage {
	t.Helper()
	entries := map[string][]byte{}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	img := &archiveImage{files: map[string]int64{}}
	layers := map[string]map[string]int64{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", file, err)
		}
		if strings.HasSuffix(h.Name, ".json") {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			entries[h.Name] = b
			continue
		}
		if strings.HasSuffix(h.Name, ".tar") {
			layers[h.Name] = listLayer(t, tr)
		}
	}
	var manifest []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest.json of %s: %v (%d images)", file, err, len(manifest))
	}
	if err := json.Unmarshal(entries[manifest[0].Config], img); err != nil {
		t.Fatalf("config of %s: %v", file, err)
	}
	for _, l := range manifest[0].Layers {
		files, ok := layers[l]
		if !ok {
			t.Fatalf("layer %s of %s is missing", l, file)
		}
		for p, m := range files {
			img.files[p] = m
		}
	}
	return img
}

func listLayer(t *testing.T, r io.Reader) map[string]int64 {
	t.Helper()
	files := map[string]int64{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("reading a layer: %v", err)
		}
		files[strings.TrimPrefix(path.Clean("/"+h.Name), "/")] = h.Mode
	}
}

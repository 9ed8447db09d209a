package cronjobs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/cronjobs"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// TestVolumesGolden: a namespace's backup volumes and its provisioning Job, on NFS and
// on hostPath, compared with testdata/volumes/NAME.golden.yaml (-update rewrites them).
func TestVolumesGolden(t *testing.T) {
	hml := inject.Namespace{
		Name: "acme-hml",
		Labels: map[string]string{contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSmartERP,
			contract.LabelEnvironment: contract.EnvironmentHomologation, contract.LabelCustomer: "acme", contract.LabelRestoreSource: "acme-prd"},
		Annotations: map[string]string{contract.AnnotationDatabaseEndpoint: "postgres.acme.svc", contract.AnnotationDatabaseName: "erp_hml"},
	}
	prd := inject.Namespace{
		Name: "acme-prd",
		Labels: map[string]string{contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSmartERP,
			contract.LabelEnvironment: contract.EnvironmentProduction, contract.LabelCustomer: "acme"},
		Annotations: map[string]string{contract.AnnotationDatabaseEndpoint: "postgres.acme.svc", contract.AnnotationDatabaseName: "erp"},
	}
	hostPath := map[string]string{"VOLUME_SOURCE": "hostpath:///srv/smartbackup?read_only_root=/srv/smartbackup-ro"}
	cases := map[string]struct {
		ns  inject.Namespace
		env map[string]string
	}{
		"nfs-homologation":      {hml, nil},
		"nfs-production":        {prd, nil},
		"hostpath-homologation": {hml, hostPath},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := configtest.New(t, tc.env)
			s, d := inject.ParseNamespace(tc.ns, cfg)
			if d != nil {
				t.Fatal(d)
			}
			var out bytes.Buffer
			claims := cronjobs.Claims(s, cfg)
			for _, c := range claims {
				for _, o := range []any{c.PV, c.PVC} {
					b, err := yaml.Marshal(o)
					if err != nil {
						t.Fatal(err)
					}
					out.WriteString("---\n")
					out.Write(b)
				}
				// A claim reaches exactly one directory, and only the source's is read-only.
				src := c.PV.Spec.PersistentVolumeSource
				source := c.PVC.Name == contract.ClaimSource
				dir := tc.ns.Name
				if source {
					dir = tc.ns.Labels[contract.LabelRestoreSource]
				}
				switch {
				case src.NFS != nil:
					if src.NFS.Path != "/exports/smartbackup/"+dir || src.NFS.ReadOnly != source {
						t.Errorf("%s: NFS %s read-only %v", c.PV.Name, src.NFS.Path, src.NFS.ReadOnly)
					}
				case src.HostPath != nil:
					want := "/srv/smartbackup/" + dir
					if source {
						want = "/srv/smartbackup-ro/" + dir
					}
					if src.HostPath.Path != want {
						t.Errorf("%s: hostPath %s, want %s", c.PV.Name, src.HostPath.Path, want)
					}
				}
				if r := c.PV.Spec.ClaimRef; r == nil || r.Namespace != tc.ns.Name || r.Name != c.PVC.Name || c.PVC.Spec.VolumeName != c.PV.Name {
					t.Errorf("%s is not pre-bound to %s/%s", c.PV.Name, tc.ns.Name, c.PVC.Name)
				}
			}
			wantClaims := 1
			if tc.ns.Labels[contract.LabelRestoreSource] != "" {
				wantClaims = 2
			}
			if len(claims) != wantClaims {
				t.Fatalf("%d claims, want %d", len(claims), wantClaims)
			}
			b, err := yaml.Marshal(cronjobs.ProvisionJob(s.Namespace, s.StoragePath, cfg))
			if err != nil {
				t.Fatal(err)
			}
			out.WriteString("---\n")
			out.Write(b)
			golden := filepath.Join("testdata", "volumes", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (go test -update creates it): %v", err)
			}
			if diff := cmp.Diff(string(want), out.String()); diff != "" {
				t.Errorf("%s differs (-golden +got):\n%s", golden, diff)
			}
		})
	}
}

// Namespace names are DNS labels: a namespace's own volume never has the name of
// another's source volume.
func TestVolumeNamesNeverCollide(t *testing.T) {
	for _, pair := range [][2]string{{"a-source", "a"}, {"src-a", "own"}, {"own-a", "src-a"}} {
		if cronjobs.PVName(pair[0], false) == cronjobs.PVName(pair[1], true) || cronjobs.PVName(pair[1], false) == cronjobs.PVName(pair[0], true) {
			t.Errorf("%v collide", pair)
		}
	}
	if a, b := cronjobs.ProvisionJobName("acme-prd"), cronjobs.ProvisionJobName("acme-hml"); a == b || len(a) > 63 {
		t.Errorf("provisioning Job names %q %q", a, b)
	}
}

func TestParseVolume(t *testing.T) {
	good := map[string]config.Volume{
		"nfs://nfs.backup.internal/exports/smartbackup":                  {Kind: config.VolumeNFS, Server: "nfs.backup.internal", Root: "/exports/smartbackup"},
		"nfs://10.0.0.5/srv/b":                                           {Kind: config.VolumeNFS, Server: "10.0.0.5", Root: "/srv/b"},
		"hostpath:///srv/smartbackup?read_only_root=/srv/smartbackup-ro": {Kind: config.VolumeHostPath, Root: "/srv/smartbackup", ReadOnlyRoot: "/srv/smartbackup-ro"},
	}
	for raw, want := range good {
		got, err := config.ParseVolume(raw)
		if err != nil || got != want {
			t.Errorf("ParseVolume(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for _, raw := range []string{"", "nfs:///exports", "nfs://server", "nfs://server/", "nfs://server:2049/x", "nfs://user@server/x",
		"nfs://server/x?ro=1", "nfs://server/a/../b", "nfs://Bad_Host/x", "hostpath:///srv/b", "hostpath:///srv/b?read_only_root=/srv/b",
		"hostpath://node/srv/b?read_only_root=/ro", "hostpath:///srv/b?read_only_root=ro", "hostpath:///srv/b?read_only_root=/ro&x=1",
		"file:///backup", "nfs://server/a,b"} {
		if v, err := config.ParseVolume(raw); err == nil {
			t.Errorf("ParseVolume(%q) = %+v, want an error", raw, v)
		} else if strings.Contains(err.Error(), "%!") {
			t.Errorf("ParseVolume(%q): malformed message %q", raw, err)
		}
	}
}

package storage

import (
	"errors"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := map[string]struct {
		url     string
		want    Location
		wantErr string
	}{
		"a GCS bucket":                {url: "gs://erp-backups", want: Location{Scheme: "gs", Bucket: "erp-backups"}},
		"a GCS bucket with a prefix":  {url: "gs://erp-backups/sistemico/br", want: Location{Scheme: "gs", Bucket: "erp-backups", Prefix: "sistemico/br"}},
		"a trailing slash is trimmed": {url: "s3://erp-backups/smarterp/", want: Location{Scheme: "s3", Bucket: "erp-backups", Prefix: "smarterp"}},
		"S3 options":                  {url: "s3://b-1.x?region=sa-east-1&path_style=true", want: Location{Scheme: "s3", Bucket: "b-1.x"}},
		"a cluster volume":            {url: "file:///backup/smarterp", want: Location{Scheme: "file", Prefix: "/backup/smarterp"}},
		"an empty URL":                {url: "", wantErr: "empty"},
		"an unknown scheme":           {url: "ftp://host/x", wantErr: `scheme "ftp"`},
		"no scheme at all":            {url: "/backup", wantErr: `scheme ""`},
		"credentials in the URL":      {url: "s3://key:secret@bucket", wantErr: "credentials in the URL"},
		"a bad bucket name":           {url: "gs://Bucket_Upper", wantErr: "bucket name"},
		"a too short bucket":          {url: "gs://ab", wantErr: "bucket name"},
		"a dot-dot prefix":            {url: "gs://bucket/a/../b", wantErr: "prefix"},
		"an unknown option":           {url: "gs://bucket?region=x", wantErr: `unknown option "region"`},
		"a bad part size":             {url: "s3://bucket?part_size_mib=-1", wantErr: "part_size_mib"},
		"a bad boolean":               {url: "s3://bucket?path_style=maybe", wantErr: "path_style"},
		"an endpoint with a password": {url: "s3://bucket?endpoint=http://u:p@host", wantErr: "endpoint"},
		"an endpoint without scheme":  {url: "s3://bucket?endpoint=minio:9000", wantErr: "endpoint"},
		"a relative file path":        {url: "file://backup/x", wantErr: "take no host"},
		"the file root":               {url: "file:///", wantErr: "other than /"},
		"an unclean file path":        {url: "file:///backup/../etc", wantErr: "clean absolute"},
		"a fragment":                  {url: "gs://bucket#x", wantErr: "fragment"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := ParseURL(tc.url)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalidURL) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseURL(%q) = %v, want ErrInvalidURL mentioning %q", tc.url, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tc.url, err)
			}
			if got.Scheme != tc.want.Scheme || got.Bucket != tc.want.Bucket || got.Prefix != tc.want.Prefix {
				t.Fatalf("ParseURL(%q) = %+v, want %+v", tc.url, got, tc.want)
			}
		})
	}
}

func TestLocationKeys(t *testing.T) {
	l, err := ParseURL("gs://bucket/pre/fix")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.join("ns/a"); got != "pre/fix/ns/a" {
		t.Errorf("join = %q", got)
	}
	if got := l.trim("pre/fix/ns/a"); got != "ns/a" {
		t.Errorf("trim = %q", got)
	}
	if got := l.String(); got != "gs://bucket/pre/fix" {
		t.Errorf("String = %q", got)
	}
}

// FuzzParseURL: any input gives a Location or ErrInvalidURL, never a panic, and a
// Location renders to a URL that parses to the same Location.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"gs://b-1/p", "s3://bucket/a/b?region=x&endpoint=http://h:1", "file:///backup", "%zz", "s3://a:b@c", "gs://bucket/../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		loc, err := ParseURL(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalidURL) {
				t.Fatalf("ParseURL(%q) error %v is not ErrInvalidURL", raw, err)
			}
			return
		}
		again, err := ParseURL(loc.String())
		if err != nil {
			t.Fatalf("re-parsing %q (from %q): %v", loc.String(), raw, err)
		}
		if again.Scheme != loc.Scheme || again.Bucket != loc.Bucket || again.Prefix != loc.Prefix {
			t.Fatalf("round trip %q -> %+v -> %+v", raw, loc, again)
		}
	})
}

// FuzzValidateKey: an accepted key never escapes the store's root.
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"ns/database_latest.dump.gz", "../x", "a//b", "a/./b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if ValidateKey(key) != nil {
			return
		}
		if strings.HasPrefix(key, "/") || strings.Contains("/"+key+"/", "/../") || strings.Contains(key, "\x00") {
			t.Fatalf("accepted key %q escapes the root", key)
		}
	})
}

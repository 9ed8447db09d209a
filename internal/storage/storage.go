// Package storage is the backup storage layer shared by cronbackup and initrestore.
//
// A Store is addressed by URL:
//
//	gs://BUCKET[/PREFIX][?endpoint=URL&anonymous=true&chunk_size_mib=N]
//	s3://BUCKET[/PREFIX][?region=R&endpoint=URL&path_style=true&part_size_mib=N&concurrency=N]
//	file:///PATH
//
// Credentials never appear in the URL: GCS uses Application Default Credentials
// (Workload Identity in a cluster; STORAGE_EMULATOR_HOST is honoured for tests), S3 the
// standard AWS chain (IRSA, environment, shared files).
//
// Every write is atomic: a reader never sees a partial object under its final name,
// and a write aborted by an error or a cancelled context leaves nothing behind.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// ErrNotFound reports that the store answered and the object does not exist. Any other
// error means the store could not answer (unreachable, forbidden, misconfigured): callers
// must never treat those as "no object".
var ErrNotFound = errors.New("object not found")

// ErrInvalidURL reports a storage URL that cannot be used.
var ErrInvalidURL = errors.New("invalid storage URL")

// ErrInvalidKey reports an object key that is not a clean relative path.
var ErrInvalidKey = errors.New("invalid object key")

// ObjectInfo describes a stored object. Keys are relative to the store's prefix.
type ObjectInfo struct {
	Key      string
	Size     int64
	Modified time.Time
	// Metadata is the user metadata given to Put (keys in lower case).
	Metadata map[string]string
}

// PutOptions are optional attributes of a written object.
type PutOptions struct {
	ContentType string
	// Metadata is stored with the object; keys must be lower-case [a-z0-9-].
	Metadata map[string]string
}

// Store is one backup location.
type Store interface {
	// Put streams r, of unknown length, into key. The object appears under key only
	// when r reached io.EOF and the store committed it.
	Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (ObjectInfo, error)
	// Open streams the object; the returned info carries its size.
	Open(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)
	// Stat returns the object's size, time and metadata.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List returns every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Delete removes key; deleting a missing object returns ErrNotFound.
	Delete(ctx context.Context, key string) error
	// Copy copies src to dst atomically, server-side where the store can.
	Copy(ctx context.Context, src, dst string) (ObjectInfo, error)
	// String is the store's URL, safe to log.
	String() string
	Close() error
}

// Location is a parsed storage URL.
type Location struct {
	Scheme string // "gs", "s3" or "file"
	Bucket string // empty for file
	Prefix string // no leading or trailing slash; for file, the absolute directory
	Query  url.Values
}

// String renders the location back as a URL. Locations carry no credentials.
func (l Location) String() string {
	u := url.URL{Scheme: l.Scheme, Host: l.Bucket, RawQuery: l.Query.Encode()}
	if l.Scheme == "file" {
		u.Path = l.Prefix
	} else if l.Prefix != "" {
		u.Path = "/" + l.Prefix
	}
	return u.String()
}

var knownOptions = map[string][]string{
	"gs":   {"endpoint", "anonymous", "chunk_size_mib"},
	"s3":   {"region", "endpoint", "path_style", "part_size_mib", "concurrency"},
	"file": {"namespace_marker"},
}

// ParseURL validates a storage URL without touching the network.
func ParseURL(raw string) (Location, error) {
	if raw == "" {
		return Location{}, fmt.Errorf("%w: empty", ErrInvalidURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the input; the input holds no secret by contract, but
		// keep the message short and stable.
		return Location{}, fmt.Errorf("%w: %v", ErrInvalidURL, errors.Unwrap(err))
	}
	allowed, ok := knownOptions[u.Scheme]
	if !ok {
		return Location{}, fmt.Errorf("%w: scheme %q is not one of gs, s3, file", ErrInvalidURL, u.Scheme)
	}
	if u.User != nil {
		return Location{}, fmt.Errorf("%w: credentials in the URL are not accepted; use the cloud credential chain", ErrInvalidURL)
	}
	if u.Fragment != "" || u.Opaque != "" {
		return Location{}, fmt.Errorf("%w: unexpected fragment or opaque part", ErrInvalidURL)
	}
	q := u.Query()
	for k := range q {
		if !contains(allowed, k) {
			return Location{}, fmt.Errorf("%w: unknown option %q for %s (known: %s)", ErrInvalidURL, k, u.Scheme, strings.Join(allowed, ", "))
		}
	}
	for _, k := range []string{"chunk_size_mib", "part_size_mib", "concurrency"} {
		if v := q.Get(k); v != "" {
			if n, err := strconv.Atoi(v); err != nil || n <= 0 || n > 5120 {
				return Location{}, fmt.Errorf("%w: option %q must be a positive integer", ErrInvalidURL, k)
			}
		}
	}
	for _, k := range []string{"anonymous", "path_style", "namespace_marker"} {
		if v := q.Get(k); v != "" {
			if _, err := strconv.ParseBool(v); err != nil {
				return Location{}, fmt.Errorf("%w: option %q must be true or false", ErrInvalidURL, k)
			}
		}
	}
	if v := q.Get("endpoint"); v != "" {
		e, err := url.Parse(v)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.User != nil {
			return Location{}, fmt.Errorf("%w: option \"endpoint\" must be an http(s) URL without credentials", ErrInvalidURL)
		}
	}
	loc := Location{Scheme: u.Scheme, Query: q}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("%w: file URLs take no host, write file:///path", ErrInvalidURL)
		}
		if !path.IsAbs(u.Path) || u.Path != path.Clean(u.Path) || u.Path == "/" {
			return Location{}, fmt.Errorf("%w: file URLs need a clean absolute directory other than /", ErrInvalidURL)
		}
		loc.Prefix = u.Path
	default:
		if !validBucket(u.Host) {
			return Location{}, fmt.Errorf("%w: bucket name %q is not valid", ErrInvalidURL, u.Host)
		}
		loc.Bucket = u.Host
		p := strings.Trim(u.Path, "/")
		if p != "" {
			if err := ValidateKey(p); err != nil {
				return Location{}, fmt.Errorf("%w: prefix: %v", ErrInvalidURL, err)
			}
		}
		loc.Prefix = p
	}
	return loc, nil
}

// validBucket accepts the names both GCS and S3 allow (3-63 of [a-z0-9.-_], starting and
// ending alphanumeric).
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i, c := range b {
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if !alnum && c != '-' && c != '.' && c != '_' {
			return false
		}
		if (i == 0 || i == len(b)-1) && !alnum {
			return false
		}
	}
	return true
}

// ValidateKey accepts clean relative slash-separated keys: no empty, "." or ".."
// segment, no leading or trailing slash, no control character, at most 1024 bytes.
func ValidateKey(key string) error {
	if key == "" || len(key) > 1024 {
		return fmt.Errorf("%w: %q: empty or longer than 1024 bytes", ErrInvalidKey, key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q: empty, \".\" or \"..\" segment", ErrInvalidKey, key)
		}
		if strings.HasPrefix(seg, tempPrefix) {
			return fmt.Errorf("%w: %q: segments starting with %q are reserved", ErrInvalidKey, key, tempPrefix)
		}
	}
	for _, c := range key {
		if c < 0x20 || c == 0x7f || c == '\\' || c == 0xfffd {
			return fmt.Errorf("%w: %q: control, backslash or invalid UTF-8 character", ErrInvalidKey, key)
		}
	}
	return nil
}

// tempPrefix marks in-flight files of the file store; keys may not use it.
const tempPrefix = ".smartbackup-tmp-"

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Open connects to the store at rawURL. It does not check that the bucket exists;
// the first operation reports that.
func Open(ctx context.Context, rawURL string) (Store, error) {
	loc, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	switch loc.Scheme {
	case "gs":
		return newGCS(ctx, loc)
	case "s3":
		return newS3(ctx, loc)
	default:
		return newFile(loc)
	}
}

// join prefixes key with the location's prefix.
func (l Location) join(key string) string {
	if l.Prefix == "" {
		return key
	}
	return l.Prefix + "/" + key
}

// trim removes the location's prefix from a full object name.
func (l Location) trim(name string) string {
	if l.Prefix == "" {
		return name
	}
	return strings.TrimPrefix(name, l.Prefix+"/")
}

func intOption(q url.Values, name string, def int) int {
	if n, err := strconv.Atoi(q.Get(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func boolOption(q url.Values, name string, def bool) bool {
	if b, err := strconv.ParseBool(q.Get(name)); err == nil {
		return b
	}
	return def
}

// validMetadata checks metadata keys portable across stores.
func validMetadata(m map[string]string) error {
	for k, v := range m {
		if k == "" || len(k) > 64 || len(v) > 1024 {
			return fmt.Errorf("metadata %q: key empty or too long, or value too long", k)
		}
		for _, c := range k {
			if !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
				return fmt.Errorf("metadata key %q: only lower-case letters, digits and '-'", k)
			}
		}
		for _, c := range v {
			if c < 0x20 || c > 0x7e {
				return fmt.Errorf("metadata %q: value must be printable ASCII", k)
			}
		}
	}
	return nil
}

// Package inventory says what a store holds for a namespace, from listings, manifests
// and verification results alone: the latest backup (time, size, sha256), the dated
// backups kept, the newest verification and, on request, every backup's. It never opens
// a dump: exporting customer data to a workstation is what the LGPD rules of the
// operations page forbid. `cronbackup status` and `kubectl smartbackup` read it.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// Namespace is one namespace's backups.
type Namespace struct {
	Namespace string `json:"namespace"`
	// Latest is the immutable object restores take (the one the latest manifest
	// names), or the latest copy when there is no manifest.
	Latest   string    `json:"latest,omitempty"`
	Time     time.Time `json:"time,omitzero"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256,omitempty"`
	Database string    `json:"database,omitempty"`
	// Backups counts the dated backups kept.
	Backups int `json:"backups"`
	// Problem says what is wrong (no manifest, unreadable manifest).
	Problem string `json:"problem,omitempty"`
	// Verification is the newest verification result in the store, of any backup.
	Verification *Verification `json:"verification,omitempty"`
	// History is every dated backup, newest first (only when asked for).
	History []Backup `json:"history,omitempty"`
}

// Verification is a verification result in short.
type Verification struct {
	Object     string    `json:"object"`
	Verdict    string    `json:"verdict"`
	FinishedAt time.Time `json:"finishedAt"`
	// Failures says what did not verify.
	Failures []string `json:"failures,omitempty"`
	// Problem: the result could not be read or checked (Verdict is then empty).
	Problem string `json:"problem,omitempty"`
}

// Backup is one dated backup.
type Backup struct {
	Key    string    `json:"key"`
	Time   time.Time `json:"time"`
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256,omitempty"`
	// Complete: its manifest names it with its size, so a restore may take it.
	Complete     bool          `json:"complete"`
	Problem      string        `json:"problem,omitempty"`
	Verification *Verification `json:"verification,omitempty"`
}

// maxSmall bounds what is read of a manifest or a verification result.
const maxSmall = 1 << 20

// Collect lists the whole store and takes the inventory of every namespace in it.
func Collect(ctx context.Context, st storage.Store) ([]Namespace, error) {
	objs, err := st.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", st, err)
	}
	byNS := map[string][]storage.ObjectInfo{}
	for _, o := range objs {
		ns, _, ok := strings.Cut(o.Key, "/")
		if ok && layout.ValidNamespace(ns) == nil {
			byNS[ns] = append(byNS[ns], o)
		}
	}
	out := make([]Namespace, 0, len(byNS))
	for ns, objs := range byNS {
		out = append(out, take(ctx, st, ns, objs, false))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace < out[j].Namespace })
	return out, nil
}

// Take lists the namespace's objects and takes its inventory; with history, every
// dated backup's manifest and verification are read too.
func Take(ctx context.Context, st storage.Store, ns string, history bool) (Namespace, error) {
	if err := layout.ValidNamespace(ns); err != nil {
		return Namespace{}, err
	}
	objs, err := st.List(ctx, ns+"/")
	if err != nil {
		return Namespace{}, fmt.Errorf("listing %s for namespace %q: %w", st, ns, err)
	}
	return take(ctx, st, ns, objs, history), nil
}

func take(ctx context.Context, st storage.Store, ns string, objs []storage.ObjectInfo, history bool) Namespace {
	r := Namespace{Namespace: ns}
	sizes := map[string]int64{}
	var dated []layout.Backup
	var verifications []string
	for _, o := range objs {
		_, name, _ := strings.Cut(o.Key, "/")
		if strings.Contains(name, "/") {
			continue
		}
		sizes[o.Key] = o.Size
		switch {
		case name == layout.LatestObject:
			r.Size = o.Size
		case strings.HasSuffix(name, layout.DumpSuffix):
			if b, ok := layout.ParseBackupKey(o.Key); ok {
				dated = append(dated, b)
			}
		case strings.HasSuffix(name, layout.VerifySuffix):
			if _, ok := layout.ParseBackupKey(strings.TrimSuffix(o.Key, layout.VerifySuffix) + layout.DumpSuffix); ok {
				verifications = append(verifications, o.Key)
			}
		}
	}
	r.Backups = len(dated)
	judgeLatest(ctx, st, &r, sizes)
	// The newest verification: keys sort by their UTC time.
	sort.Strings(verifications)
	if n := len(verifications); n > 0 {
		r.Verification = readVerification(ctx, st, verifications[n-1])
	}
	if history {
		sort.Slice(dated, func(i, j int) bool { return dated[i].Time.After(dated[j].Time) })
		for _, b := range dated {
			r.History = append(r.History, describe(ctx, st, b, sizes))
		}
	}
	return r
}

// judgeLatest reads the latest manifest and checks it against the listing, as restores
// would (see internal/catalog.Find): restores read the immutable object the latest
// manifest names; the latest copy is for the page's tools.
func judgeLatest(ctx context.Context, st storage.Store, r *Namespace, sizes map[string]int64) {
	m, err := readManifest(ctx, st, layout.LatestManifestKey(r.Namespace))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if r.Size > 0 {
			r.Latest, r.Problem = layout.LatestKey(r.Namespace), "latest has no manifest (made by the shell pipeline?)"
		} else {
			r.Problem = "no latest backup"
		}
		return
	case err != nil:
		r.Problem = err.Error()
		return
	case m.Namespace != r.Namespace:
		r.Problem = fmt.Sprintf("the latest manifest describes namespace %q: restores refuse it", m.Namespace)
		return
	}
	r.Latest, r.Time, r.SHA256, r.Database = m.Object, m.StartedAt, m.SHA256, m.Database
	size, ok := sizes[m.Object]
	switch {
	case !ok:
		r.Problem = fmt.Sprintf("the latest manifest names %s, which is missing: restores take the newest complete backup", m.Object)
	case size != m.Size:
		r.Problem = fmt.Sprintf("%s has %d bytes, its manifest says %d: restores take the newest complete backup", m.Object, size, m.Size)
	case r.Size != m.Size:
		r.Problem = fmt.Sprintf("%s has %d bytes, the latest manifest says %d (an interrupted promotion; restores are not affected)", layout.LatestObject, r.Size, m.Size)
	}
	if ok {
		r.Size = size
	}
}

// describe reads one dated backup's manifest and verification result.
func describe(ctx context.Context, st storage.Store, b layout.Backup, sizes map[string]int64) Backup {
	out := Backup{Key: b.Key, Time: b.Time, Size: sizes[b.Key]}
	m, err := readManifest(ctx, st, layout.ManifestKey(b.Key))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		out.Problem = "no manifest: restores skip it"
	case err != nil:
		out.Problem = err.Error()
	case m.Object != b.Key || m.Namespace != b.Namespace:
		out.Problem = fmt.Sprintf("its manifest names %s: restores skip it", m.Object)
	case m.Size != out.Size:
		out.Problem = fmt.Sprintf("%d bytes, its manifest says %d: restores skip it", out.Size, m.Size)
	default:
		out.SHA256, out.Complete = m.SHA256, true
	}
	vk := layout.VerifyKey(b.Key)
	if _, ok := sizes[vk]; ok {
		out.Verification = readVerification(ctx, st, vk)
	}
	return out
}

func readVerification(ctx context.Context, st storage.Store, key string) *Verification {
	b, err := readSmall(ctx, st, key)
	if err != nil {
		return &Verification{Object: strings.TrimSuffix(key, layout.VerifySuffix) + layout.DumpSuffix, Problem: err.Error()}
	}
	v, err := layout.ParseVerification(b)
	if err != nil {
		return &Verification{Object: strings.TrimSuffix(key, layout.VerifySuffix) + layout.DumpSuffix, Problem: fmt.Sprintf("%s: %v", key, err)}
	}
	if want := strings.TrimSuffix(key, layout.VerifySuffix) + layout.DumpSuffix; v.Object != want {
		return &Verification{Object: want, Problem: fmt.Sprintf("%s names %s", key, v.Object)}
	}
	return &Verification{Object: v.Object, Verdict: v.Verdict, FinishedAt: v.FinishedAt, Failures: v.Failures}
}

func readManifest(ctx context.Context, st storage.Store, key string) (layout.Manifest, error) {
	b, err := readSmall(ctx, st, key)
	if err != nil {
		return layout.Manifest{}, err
	}
	return layout.ParseManifest(b)
}

func readSmall(ctx context.Context, st storage.Store, key string) ([]byte, error) {
	rc, _, err := st.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSmall+1))
	if err != nil {
		return nil, fmt.Errorf("reading %q: %w", key, err)
	}
	if len(b) > maxSmall {
		return nil, fmt.Errorf("%q is larger than %d bytes", key, maxSmall)
	}
	return b, nil
}

// HumanBytes renders n as 1.5 GiB.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/inventory"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// CronJob states.
const (
	CronJobOK        = "ok"
	CronJobRunning   = "running"
	CronJobFailed    = "failed"
	CronJobSuspended = "suspended"
	CronJobNotRunYet = "not run yet"
	CronJobMissing   = "missing"
)

// Status is one namespace's line of `status`.
type Status struct {
	Namespace   string `json:"namespace"`
	Enabled     bool   `json:"enabled"`
	Product     string `json:"product,omitempty"`
	Environment string `json:"environment,omitempty"`
	// Schedule is the backup CronJob's, with its time zone and where it comes from
	// (the backup window, the operator's schedule, the namespace's annotation).
	Schedule       string `json:"schedule,omitempty"`
	TimeZone       string `json:"timeZone,omitempty"`
	ScheduleSource string `json:"scheduleSource,omitempty"`
	CronJob        string `json:"cronJob"`
	// LastSuccessfulJob is when the backup CronJob's last successful Job finished.
	LastSuccessfulJob *time.Time `json:"lastSuccessfulJob,omitempty"`
	// Store is the storage URL the backups were read from.
	Store   string               `json:"store,omitempty"`
	Backups *inventory.Namespace `json:"backups,omitempty"`
	// Problems: what could not be read, and what is wrong.
	Problems []string `json:"problems,omitempty"`
}

func status(ctx context.Context, env *Env, c Command) error {
	names := c.Namespaces
	switch {
	case c.AllNamespaces:
		var err error
		if names, err = optedIn(ctx, env); err != nil {
			return err
		}
	case len(names) == 0:
		names = []string{env.Namespace}
	}
	stores := storeCache{env: env}
	defer stores.close()
	rows := make([]Status, 0, len(names))
	for _, ns := range names {
		rows = append(rows, namespaceStatus(ctx, env, &stores, c.Store, ns))
	}
	return printStatus(env.Out, rows, c.Output, env.Now())
}

// optedIn is every namespace labelled enabled and every namespace that still has a
// backup CronJob (suspended since it left), sorted.
func optedIn(ctx context.Context, env *Env) ([]string, error) {
	set := map[string]bool{}
	nss, err := env.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: contract.LabelEnabled + "=true"})
	if err != nil {
		return nil, fmt.Errorf("listing namespaces labelled %s=true: %w", contract.LabelEnabled, err)
	}
	for _, n := range nss.Items {
		set[n.Name] = true
	}
	cjs, err := env.Client.BatchV1().CronJobs(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: "metadata.name=" + contract.BackupCronJobName,
		LabelSelector: contract.LabelManagedBy + "=" + contract.ManagedBy,
	})
	if err != nil {
		return nil, fmt.Errorf("listing the backup CronJobs: %w", err)
	}
	for _, cj := range cjs.Items {
		set[cj.Namespace] = true
	}
	out := make([]string, 0, len(set))
	for ns := range set {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out, nil
}

func namespaceStatus(ctx context.Context, env *Env, stores *storeCache, override, name string) Status {
	s := Status{Namespace: name, CronJob: CronJobMissing}
	ns, err := env.Client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		s.Problems = append(s.Problems, "no such namespace")
	case err != nil:
		s.Problems = append(s.Problems, fmt.Sprintf("reading the namespace: %v", err))
	default:
		s.Enabled = ns.Labels[contract.LabelEnabled] == "true"
		s.Product, s.Environment = ns.Labels[contract.LabelProduct], ns.Labels[contract.LabelEnvironment]
		if !s.Enabled {
			s.Problems = append(s.Problems, fmt.Sprintf("not enabled (label %s=true)", contract.LabelEnabled))
		}
	}
	cj, err := env.Client.BatchV1().CronJobs(name).Get(ctx, contract.BackupCronJobName, metav1.GetOptions{})
	if err != nil {
		cj = nil
	}
	switch {
	case apierrors.IsNotFound(err):
		if s.Enabled {
			s.Problems = append(s.Problems, "no backup CronJob: see the namespace's SmartbackupBackupNotScheduled Events")
		}
	case err != nil:
		s.Problems = append(s.Problems, fmt.Sprintf("reading the backup CronJob: %v", err))
	default:
		describeCronJob(&s, cj)
	}
	url := override
	if url == "" && cj != nil {
		url = storageURL(cj)
	}
	if url == "" {
		if s.Enabled || cj != nil {
			s.Problems = append(s.Problems, "the store is unknown: no backup CronJob names it; pass --store")
		}
		return s
	}
	st, err := stores.open(ctx, url)
	if err != nil {
		s.Problems = append(s.Problems, err.Error())
		return s
	}
	s.Store = st.String()
	inv, err := inventory.Take(ctx, st, name, false)
	if err != nil {
		s.Problems = append(s.Problems, err.Error())
		return s
	}
	s.Backups = &inv
	if inv.Problem != "" {
		s.Problems = append(s.Problems, inv.Problem)
	}
	if v := inv.Verification; v != nil && v.Problem != "" {
		s.Problems = append(s.Problems, v.Problem)
	}
	return s
}

func describeCronJob(s *Status, cj *batchv1.CronJob) {
	s.Schedule, s.ScheduleSource = cj.Spec.Schedule, cj.Annotations[contract.AnnotationScheduleSource]
	if cj.Spec.TimeZone != nil {
		s.TimeZone = *cj.Spec.TimeZone
	}
	if t := cj.Status.LastSuccessfulTime; t != nil {
		s.LastSuccessfulJob = &t.Time
	}
	last, ok := cj.Status.LastScheduleTime, cj.Status.LastSuccessfulTime
	switch {
	case cj.Spec.Suspend != nil && *cj.Spec.Suspend:
		s.CronJob = CronJobSuspended
	case len(cj.Status.Active) > 0:
		s.CronJob = CronJobRunning
	case last == nil && ok == nil:
		s.CronJob = CronJobNotRunYet
	case ok == nil || (last != nil && last.After(ok.Time)):
		s.CronJob = CronJobFailed
	default:
		s.CronJob = CronJobOK
	}
}

// storageURL is the storage URL the CronJob's container is given.
func storageURL(cj *batchv1.CronJob) string {
	for _, c := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == contract.EnvBackupStorageURL {
				return e.Value
			}
		}
	}
	return ""
}

// storeCache opens each storage URL once.
type storeCache struct {
	env    *Env
	stores map[string]storage.Store
}

func (c *storeCache) open(ctx context.Context, url string) (storage.Store, error) {
	if st, ok := c.stores[url]; ok {
		return st, nil
	}
	if loc, err := storage.ParseURL(url); err == nil && loc.Scheme == "file" {
		if fi, err := os.Stat(loc.Prefix); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("the backups are on a cluster volume (%s), not reachable here: pass --store with a path where it is mounted", loc)
		}
	}
	st, err := c.env.OpenStore(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	if c.stores == nil {
		c.stores = map[string]storage.Store{}
	}
	c.stores[url] = st
	return st, nil
}

func (c *storeCache) close() {
	for _, st := range c.stores {
		_ = st.Close()
	}
}

func printStatus(w io.Writer, rows []Status, output string, now time.Time) error {
	if output == OutputJSON {
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tSCHEDULE\tCRONJOB\tLATEST BACKUP (UTC)\tAGE\tSIZE\tSHA256\tBACKUPS\tVERIFIED\tPROBLEMS")
	for _, r := range rows {
		sched := "-"
		if r.Schedule != "" {
			sched = r.Schedule
			if r.TimeZone != "" {
				sched += " " + r.TimeZone
			}
		}
		when, age, size, sha, count, verified := "-", "-", "-", "-", "-", "-"
		if b := r.Backups; b != nil {
			if !b.Time.IsZero() {
				when, age = b.Time.UTC().Format("2006-01-02 15:04"), humanAge(now.Sub(b.Time))
			}
			if b.Size > 0 {
				size = inventory.HumanBytes(b.Size)
			}
			if b.SHA256 != "" {
				sha = b.SHA256[:min(16, len(b.SHA256))]
			}
			count = fmt.Sprint(b.Backups)
			verified = verdict(b.Verification)
		}
		problems := "-"
		if len(r.Problems) > 0 {
			problems = strings.Join(r.Problems, "; ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, sched, r.CronJob, when, age, size, sha, count, verified, problems)
	}
	return tw.Flush()
}

func verdict(v *inventory.Verification) string {
	switch {
	case v == nil:
		return "never"
	case v.Problem != "":
		return "unreadable"
	default:
		return v.Verdict + " " + v.FinishedAt.UTC().Format("2006-01-02")
	}
}

// humanAge is 3d4h, 5h12m or 40m.
func humanAge(d time.Duration) string {
	if d < 0 {
		return "in the future"
	}
	d = d.Round(time.Minute)
	switch days := int(d.Hours()) / 24; {
	case days > 0:
		return fmt.Sprintf("%dd%dh", days, int(d.Hours())%24)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	}
}

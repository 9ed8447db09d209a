package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"text/tabwriter"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/inventory"
)

// History is what `history` shows of a namespace.
type History struct {
	Namespace string             `json:"namespace"`
	Store     string             `json:"store,omitempty"`
	Backups   []inventory.Backup `json:"backups"`
	Jobs      []JobRun           `json:"jobs"`
	Events    []OutcomeEvent     `json:"events"`
	Problems  []string           `json:"problems,omitempty"`
}

// JobRun is one backup or verification Job the cluster keeps.
type JobRun struct {
	Name     string     `json:"name"`
	CronJob  string     `json:"cronJob"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	// Outcome is succeeded, failed or running; Summary the backup's termination
	// message when its pod is still there.
	Outcome string            `json:"outcome"`
	Summary *contract.Summary `json:"summary,omitempty"`
}

// OutcomeEvent is a restore's or a backup's Event.
type OutcomeEvent struct {
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
	Pod    string    `json:"pod"`
	Note   string    `json:"note"`
}

var outcomeReasons = []string{contract.EventRestored, contract.EventRestoreFailed, contract.EventBackedUp, contract.EventBackupFailed}

func history(ctx context.Context, env *Env, c Command) error {
	ns := c.Namespaces[0]
	h := History{Namespace: ns, Backups: []inventory.Backup{}, Jobs: []JobRun{}, Events: []OutcomeEvent{}}
	cj, err := env.Client.BatchV1().CronJobs(ns).Get(ctx, contract.BackupCronJobName, metav1.GetOptions{})
	if err != nil {
		cj = nil
		if !apierrors.IsNotFound(err) {
			h.Problems = append(h.Problems, fmt.Sprintf("reading the backup CronJob: %v", err))
		}
	}
	url := c.Store
	if url == "" && cj != nil {
		url = storageURL(cj)
	}
	if url == "" {
		h.Problems = append(h.Problems, "the store is unknown: no backup CronJob names it; pass --store")
	} else {
		stores := storeCache{env: env}
		defer stores.close()
		if st, err := stores.open(ctx, url); err != nil {
			h.Problems = append(h.Problems, err.Error())
		} else if inv, err := inventory.Take(ctx, st, ns, true); err != nil {
			h.Problems = append(h.Problems, err.Error())
		} else {
			h.Store = st.String()
			h.Backups = append(h.Backups, inv.History...)
			if inv.Problem != "" {
				h.Problems = append(h.Problems, inv.Problem)
			}
		}
	}
	jobs, err := env.Client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: contract.LabelManagedBy + "=" + contract.ManagedBy})
	if err != nil {
		h.Problems = append(h.Problems, fmt.Sprintf("listing Jobs: %v", err))
	} else {
		for i := range jobs.Items {
			h.Jobs = append(h.Jobs, jobRun(ctx, env, &jobs.Items[i]))
		}
		sort.Slice(h.Jobs, func(i, j int) bool { return startOf(h.Jobs[i]).After(startOf(h.Jobs[j])) })
	}
	evs, err := env.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		h.Problems = append(h.Problems, fmt.Sprintf("listing Events: %v", err))
	} else {
		for _, e := range evs.Items {
			if !slices.Contains(outcomeReasons, e.Reason) || e.Regarding.Kind != "Pod" {
				continue
			}
			t := e.EventTime.Time
			if t.IsZero() {
				t = e.DeprecatedLastTimestamp.Time
			}
			h.Events = append(h.Events, OutcomeEvent{Time: t, Reason: e.Reason, Pod: e.Regarding.Name, Note: e.Note})
		}
		sort.Slice(h.Events, func(i, j int) bool { return h.Events[i].Time.After(h.Events[j].Time) })
	}
	return printHistory(env.Out, h, c.Output)
}

func jobRun(ctx context.Context, env *Env, j *batchv1.Job) JobRun {
	r := JobRun{Name: j.Name, Outcome: CronJobRunning}
	for _, o := range j.OwnerReferences {
		if o.Kind == "CronJob" {
			r.CronJob = o.Name
		}
	}
	if t := j.Status.StartTime; t != nil {
		r.Started = &t.Time
	}
	for _, cond := range j.Status.Conditions {
		if cond.Status != corev1.ConditionTrue {
			continue
		}
		switch cond.Type {
		case batchv1.JobComplete:
			r.Outcome = contract.OutcomeSucceeded
		case batchv1.JobFailed:
			r.Outcome = contract.OutcomeFailed
		default:
			continue
		}
		t := cond.LastTransitionTime.Time
		r.Finished = &t
	}
	if s, ok := jobSummary(ctx, env, j); ok {
		r.Summary = &s
	}
	return r
}

func startOf(r JobRun) time.Time {
	if r.Started == nil {
		return time.Time{}
	}
	return *r.Started
}

func printHistory(w io.Writer, h History, output string) error {
	if output == OutputJSON {
		return json.NewEncoder(w).Encode(h)
	}
	fmt.Fprintf(w, "Backups of %s in %s (newest first):\n", h.Namespace, orDash(h.Store))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  STARTED (UTC)\tSIZE\tSHA256\tRESTORABLE\tVERIFIED\tPROBLEM")
	for _, b := range h.Backups {
		restorable := "no"
		if b.Complete {
			restorable = "yes"
		}
		sha := orDash(b.SHA256)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", b.Time.UTC().Format("2006-01-02 15:04:05"), inventory.HumanBytes(b.Size),
			sha[:min(16, len(sha))], restorable, verdict(b.Verification), orDash(b.Problem))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nJobs the cluster keeps:\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tCRONJOB\tSTARTED (UTC)\tDURATION\tOUTCOME\tSUMMARY")
	for _, j := range h.Jobs {
		started, took := "-", "-"
		if j.Started != nil {
			started = j.Started.UTC().Format("2006-01-02 15:04:05")
			if j.Finished != nil {
				took = j.Finished.Sub(*j.Started).Round(time.Second).String()
			}
		}
		sum := "-"
		if s := j.Summary; s != nil {
			sum = s.Outcome
			if s.Object != "" {
				sum += " " + s.Object
			}
			if s.ExitCode != 0 {
				sum += fmt.Sprintf(" exit %d (%s)", s.ExitCode, s.Reason)
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", j.Name, orDash(j.CronJob), started, took, j.Outcome, sum)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nRestore and backup Events (the cluster keeps Events about an hour):\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TIME (UTC)\tREASON\tPOD\tNOTE")
	for _, e := range h.Events {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.Time.UTC().Format("2006-01-02 15:04:05"), e.Reason, e.Pod, e.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range h.Problems {
		fmt.Fprintf(w, "\nproblem: %s\n", p)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

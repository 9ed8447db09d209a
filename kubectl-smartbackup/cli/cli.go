// Package cli is `kubectl smartbackup`: the operator's view of the backups of the
// namespaces that opted in (status, history) and the two things an operator does to
// them (a forced restore through the namespace's request annotation; a verification or
// a backup now, as a Job from the namespace's CronJob). It reads the cluster through
// kubeconfig and the manifests and verification results from the store; it never
// opens a dump: exporting customer data to a workstation is forbidden (LGPD).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/smartbackup/smartbackup/internal/storage"
)

// Exit codes of the plugin.
const (
	ExitOK = 0
	// ExitFailed: the command ran and failed (the cluster or the store refused, a Job
	// failed, a verification did not pass).
	ExitFailed = 1
	// ExitUsage: the command line is not one the plugin accepts.
	ExitUsage = 2
)

// Env is what a command runs against; tests build it on a real apiserver and a store
// emulator.
type Env struct {
	Client kubernetes.Interface
	// Namespace is the kubeconfig context's namespace (status without arguments).
	Namespace string
	// OpenStore opens a storage URL (storage.Open).
	OpenStore func(ctx context.Context, url string) (storage.Store, error)
	Now       func() time.Time
	Out       io.Writer
	// Poll is how often --wait looks at a Job.
	Poll time.Duration
}

// Main runs the plugin with args (os.Args[1:]) and returns its exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := Parse(args)
	if err != nil {
		topic := ""
		if len(args) > 0 && help[args[0]] != "" {
			topic = args[0]
		}
		fmt.Fprintf(stderr, "kubectl smartbackup: %v\n\n%s\nSee \"%s\".\n", err, synopsis(topic), strings.TrimSpace("kubectl smartbackup help "+topic))
		return ExitUsage
	}
	if c.Verb == VerbHelp {
		fmt.Fprint(stdout, Usage(c.Topic))
		return ExitOK
	}
	env, err := NewEnv(c.Kubeconfig, c.Context, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "kubectl smartbackup: %v\n", err)
		return ExitFailed
	}
	if err := Run(ctx, env, c); err != nil {
		fmt.Fprintf(stderr, "kubectl smartbackup %s: %v\n", c.Verb, err)
		return ExitFailed
	}
	return ExitOK
}

// NewEnv connects to the cluster kubectl would (KUBECONFIG, ~/.kube/config, or the
// explicit file and context).
func NewEnv(kubeconfig, kubeContext string, out io.Writer) (*Env, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig's namespace: %w", err)
	}
	cfg.UserAgent = "kubectl-smartbackup"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the client: %w", err)
	}
	return &Env{Client: cs, Namespace: ns, OpenStore: storage.Open, Now: time.Now, Out: out, Poll: 2 * time.Second}, nil
}

// Run performs a parsed command.
func Run(ctx context.Context, env *Env, c Command) error {
	switch c.Verb {
	case VerbStatus:
		return status(ctx, env, c)
	case VerbHistory:
		return history(ctx, env, c)
	case VerbRestore:
		return restore(ctx, env, c)
	case VerbVerify, VerbBackup:
		return startJob(ctx, env, c)
	}
	return errors.New("no command") // Parse accepts no other verb
}

// Usage is the help of the plugin, or of one command.
func Usage(topic string) string {
	if h, ok := help[topic]; ok {
		return h + helpFooter
	}
	return help[""] + helpFooter
}

// synopsis is the usage lines of a command (all commands for "").
func synopsis(topic string) string {
	h := help[topic]
	if topic == "" {
		start := strings.Index(h, "Usage:\n")
		end := strings.Index(h, "\n\nCommands:")
		return h[start:end] + "\n"
	}
	line, _, _ := strings.Cut(h, "\n")
	return "Usage:\n  " + line + "\n"
}

const helpFooter = `
Global flags:
  --kubeconfig FILE   kubeconfig to use (default: KUBECONFIG, then ~/.kube/config)
  --context NAME      kubeconfig context to use
  -h, --help          this help; "kubectl smartbackup help COMMAND" for one command

Exit codes: 0 done, 1 failed (the cluster or the store refused, a Job failed, a
verification did not pass), 2 usage error.
`

var help = map[string]string{
	"": `kubectl smartbackup: the backups of the ERP's dbaccess databases, per namespace.

Usage:
  kubectl smartbackup status [-A | NAMESPACE...] [-o table|json] [--store URL]
  kubectl smartbackup history NAMESPACE [-o table|json] [--store URL]
  kubectl smartbackup restore NAMESPACE [--own] [--apply] [--id ID]
  kubectl smartbackup verify NAMESPACE [--wait]
  kubectl smartbackup backup NAMESPACE [--wait]

Commands:
  status    latest backup (time, age, size, sha256), last verification, schedule and
            CronJob state of namespaces that opted in (smartbackup.io/enabled=true)
  history   every backup kept in the store, the namespace's recent backup and
            verification Jobs and the restore and backup Events
  restore   a forced restore from the latest backup of the namespace's production
            source (or, with --own, of itself): prints the steps, --apply performs them
  verify    starts the weekly verification now, as a Job from smartbackup-verify
  backup    starts the nightly backup now, as a Job from smartbackup-backup

It reads the cluster through kubeconfig and the manifests and verification results
from the store (with your own credentials: gcloud ADC, the AWS chain); it never
downloads a dump.
`,
	VerbStatus: `kubectl smartbackup status [-A | NAMESPACE...] [-o table|json] [--store URL]

Per namespace: the backup schedule and its CronJob's state (ok, running, failed,
suspended, not run yet, missing), the latest backup restores would take (UTC start
time, age, size, the first 16 hex digits of its sha256), the newest verification's
verdict, and any problem found. Without arguments: the kubeconfig context's namespace.

  -A, --all-namespaces   every namespace labelled smartbackup.io/enabled=true, and
                         every namespace that still has a backup CronJob
  -o, --output FORMAT    table (default) or json (one object per line)
  --store URL            read the backups here instead of at the storage URL the
                         namespace's backup CronJob names (gs://, s3://, file:///; for
                         a cluster volume, a path where it is mounted)
`,
	VerbHistory: `kubectl smartbackup history NAMESPACE [-o table|json] [--store URL]

Every dated backup of NAMESPACE in the store, newest first: UTC start time, size,
sha256, whether its manifest makes it restorable, its verification; then the
namespace's backup and verification Jobs the cluster still keeps, with their outcome,
and the SmartbackupRestored, SmartbackupRestoreFailed, SmartbackupBackedUp and
SmartbackupBackupFailed Events.

  -o, --output FORMAT   table (default) or json
  --store URL           as for status
`,
	VerbRestore: `kubectl smartbackup restore NAMESPACE [--own] [--apply] [--id ID]

A forced restore (the operations page's manual restore, without psql): records a
request on the namespace (annotations smartbackup.io/restore-request and
smartbackup.io/restore-request-source) and deletes its injected dbaccess pods; each
new pod's init container restores before dbaccess starts, once per request id.
Without --apply it prints the steps and changes nothing.

The source is the latest backup of the namespace's production source (its
admin-set label smartbackup.io/restore-source, itself for production), or with --own
of the namespace itself; no other source exists.

  --own      restore from NAMESPACE's own latest backup
  --apply    perform the steps
  --id ID    the request id, recorded in the restored database (default:
             manual-<UTC time>)
`,
	VerbVerify: `kubectl smartbackup verify NAMESPACE [--wait]

Starts a Job from the namespace's smartbackup-verify CronJob: its latest backup is
restored into a scratch database on the verification server, counted against the rows
the backup recorded, and dropped; the verdict is written beside the backup.

  --wait   wait for the Job, then print the verdict (exit 1 unless it passed)
`,
	VerbBackup: `kubectl smartbackup backup NAMESPACE [--wait]

Starts a Job from the namespace's smartbackup-backup CronJob: a backup now, kept and
promoted to latest like the nightly one.

  --wait   wait for the Job, then print its outcome (exit 1 unless it succeeded)
`,
}

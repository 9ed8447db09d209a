// Command force-restore is the operations page's "bash that builds the statements" for
// a manual restore, done through the force-restore annotation instead of psql: it
// prints the steps that make a namespace's dbaccess restore its database from the
// latest backup of its production source or of itself, and performs them with --apply.
//
//	go run ./hack/force-restore [--apply] [--kubeconfig FILE] TARGET_NAMESPACE [SOURCE_NAMESPACE]
//
// SOURCE_NAMESPACE defaults to TARGET's production source. Only two sources exist, by
// design: TARGET itself ("own") and the production namespace its admin-set label
// smartbackup.io/restore-source names; choosing another one is an administrator's
// relabelling, which the webhook checks (same customer, production). Nothing is
// downloaded: the restore runs inside the cluster, in the init container.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/smartbackup/smartbackup/internal/contract"
)

func main() {
	apply := flag.Bool("apply", false, "perform the steps instead of printing them")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file (default: the usual loading rules)")
	id := flag.String("id", "", "request id (default: manual-<UTC time>)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: force-restore [--apply] [--kubeconfig FILE] [--id ID] TARGET_NAMESPACE [SOURCE_NAMESPACE]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() < 1 || flag.NArg() > 2 {
		flag.Usage()
		os.Exit(2)
	}
	if *id == "" {
		*id = "manual-" + time.Now().UTC().Format("20060102T150405Z")
	}
	if err := run(context.Background(), *kubeconfig, *apply, *id, flag.Arg(0), flag.Arg(1)); err != nil {
		fmt.Fprintln(os.Stderr, "force-restore:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig string, apply bool, id, target, source string) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ns, err := cs.CoreV1().Namespaces().Get(ctx, target, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading namespace %q: %w", target, err)
	}
	p, err := Plan(ns, source, id)
	if err != nil {
		return err
	}
	fmt.Print(p.Script())
	if !apply {
		fmt.Println("# dry run: nothing was changed; run again with --apply to perform these steps")
		return nil
	}
	return p.Apply(ctx, cs)
}

// Steps is a planned forced restore.
type Steps struct {
	Namespace   string
	RequestID   string
	Source      string // contract.RequestSourceOwn or RequestSourceProduction
	FromBackups string // the namespace whose latest backup will be restored
}

// Plan checks what is asked against the namespace's admin-set metadata.
func Plan(ns *corev1.Namespace, source, id string) (Steps, error) {
	l := ns.Labels
	if l[contract.LabelEnabled] != "true" {
		return Steps{}, fmt.Errorf("namespace %q is not enabled (label %s=true): the webhook does not manage its dbaccess", ns.Name, contract.LabelEnabled)
	}
	if strings.ContainsAny(id, "\n\x00") || len(id) > 128 {
		return Steps{}, errors.New("the request id must be one line of at most 128 characters")
	}
	prod := l[contract.LabelRestoreSource]
	if prod == "" || l[contract.LabelEnvironment] == contract.EnvironmentProduction {
		prod = ns.Name
	}
	if source == "" {
		source = prod
	}
	s := Steps{Namespace: ns.Name, RequestID: id, FromBackups: source}
	switch source {
	case prod:
		s.Source = contract.RequestSourceProduction
	case ns.Name:
		s.Source = contract.RequestSourceOwn
	default:
		return Steps{}, fmt.Errorf("namespace %q restores only from itself or from %q (label %s); restoring from %q needs an administrator to relabel the namespace, and the webhook accepts only a production namespace of the same customer",
			ns.Name, prod, contract.LabelRestoreSource, source)
	}
	return s, nil
}

// Script is the plan as the kubectl commands an operator would type.
func (s Steps) Script() string {
	return fmt.Sprintf(`# Restore the database of namespace %[1]s from the latest backup of %[4]s.
# 1. Record the request on the namespace (admin-controlled; applied once, then recorded in the database):
kubectl annotate namespace %[1]s %[5]s=%[2]s %[6]s=%[3]s --overwrite
# 2. Restart dbaccess: its init container sees the new request and restores before dbaccess boots:
kubectl delete pod -n %[1]s -l %[7]s=%[8]s
# 3. Follow the restore:
kubectl logs -n %[1]s -l %[7]s=%[8]s -c %[9]s -f
`, s.Namespace, s.RequestID, s.Source, s.FromBackups, contract.AnnotationRestoreRequest, contract.AnnotationRestoreRequestSource,
		contract.LabelAppName, contract.DBAccessName, contract.InitContainerName)
}

// Apply performs the steps: the annotation, then the pods' deletion.
func (s Steps) Apply(ctx context.Context, cs kubernetes.Interface) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:%q}}}`,
		contract.AnnotationRestoreRequest, s.RequestID, contract.AnnotationRestoreRequestSource, s.Source)
	if _, err := cs.CoreV1().Namespaces().Patch(ctx, s.Namespace, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("annotating namespace %q: %w", s.Namespace, err)
	}
	sel := contract.LabelAppName + "=" + contract.DBAccessName
	if err := cs.CoreV1().Pods(s.Namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel}); err != nil {
		return fmt.Errorf("restarting dbaccess in %q: %w", s.Namespace, err)
	}
	fmt.Printf("# applied: request %s recorded on %s, dbaccess pods deleted\n", s.RequestID, s.Namespace)
	return nil
}

package cli

import (
	"context"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/smartbackup/smartbackup/internal/contract"
)

// RestorePlan is a planned forced restore.
type RestorePlan struct {
	Namespace string
	RequestID string
	// Source is contract.RequestSourceOwn or RequestSourceProduction, and FromBackups
	// the namespace whose latest backup will be restored.
	Source      string
	FromBackups string
}

// PlanRestore checks what is asked against the namespace's admin-set metadata: only two
// sources exist, the namespace itself (own) and the production namespace its label
// smartbackup.io/restore-source names (itself, for production); choosing another is an
// administrator's relabelling, which the webhook checks (same customer, production).
func PlanRestore(ns *corev1.Namespace, own bool, id string) (RestorePlan, error) {
	l := ns.Labels
	if l[contract.LabelEnabled] != "true" {
		return RestorePlan{}, fmt.Errorf("namespace %q is not enabled (label %s=true): the webhook does not manage its dbaccess", ns.Name, contract.LabelEnabled)
	}
	if err := validRequestID(id); err != nil {
		return RestorePlan{}, err
	}
	p := RestorePlan{Namespace: ns.Name, RequestID: id, Source: contract.RequestSourceProduction, FromBackups: ns.Name}
	if own {
		p.Source = contract.RequestSourceOwn
		return p, nil
	}
	if src := l[contract.LabelRestoreSource]; src != "" && l[contract.LabelEnvironment] != contract.EnvironmentProduction {
		p.FromBackups = src
	}
	return p, nil
}

// Script is the plan as the kubectl commands an operator would type.
func (p RestorePlan) Script() string {
	return fmt.Sprintf(`# Restore the database of namespace %[1]s from the latest backup of %[4]s.
# 1. Record the request on the namespace (admin-controlled; applied once, then recorded in the database):
kubectl annotate namespace %[1]s %[5]s=%[2]s %[6]s=%[3]s --overwrite
# 2. Restart dbaccess: each injected pod's init container sees the new request and restores before dbaccess boots:
kubectl delete pod -n %[1]s <each pod annotated %[7]s>
# 3. Follow the restore:
kubectl logs -n %[1]s <new pod> -c %[8]s -f
`, p.Namespace, p.RequestID, p.Source, p.FromBackups, contract.AnnotationRestoreRequest, contract.AnnotationRestoreRequestSource,
		contract.AnnotationInjected, contract.InitContainerName)
}

// Apply records the request on the namespace, then deletes the namespace's injected
// pods (those carrying the injection's annotation: the webhook's, whatever their
// labels), and says which.
func (p RestorePlan) Apply(ctx context.Context, cs kubernetes.Interface, out io.Writer) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q,%q:%q}}}`,
		contract.AnnotationRestoreRequest, p.RequestID, contract.AnnotationRestoreRequestSource, p.Source)
	if _, err := cs.CoreV1().Namespaces().Patch(ctx, p.Namespace, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("annotating namespace %q: %w", p.Namespace, err)
	}
	pods, err := cs.CoreV1().Pods(p.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing the pods of %q: %w", p.Namespace, err)
	}
	deleted := 0
	for _, pod := range pods.Items {
		if _, ok := pod.Annotations[contract.AnnotationInjected]; !ok || pod.DeletionTimestamp != nil {
			continue
		}
		if err := cs.CoreV1().Pods(p.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("deleting pod %s/%s: %w", p.Namespace, pod.Name, err)
		}
		fmt.Fprintf(out, "# deleted pod %s\n", pod.Name)
		deleted++
	}
	fmt.Fprintf(out, "# applied: request %s recorded on %s, %d dbaccess pod(s) deleted", p.RequestID, p.Namespace, deleted)
	if deleted == 0 {
		fmt.Fprint(out, "; no injected pod runs now: the next dbaccess pod restores")
	}
	fmt.Fprintln(out)
	return nil
}

func restore(ctx context.Context, env *Env, c Command) error {
	ns, err := env.Client.CoreV1().Namespaces().Get(ctx, c.Namespaces[0], metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading namespace %q: %w", c.Namespaces[0], err)
	}
	id := c.RequestID
	if id == "" {
		id = "manual-" + env.Now().UTC().Format("20060102T150405Z")
	}
	p, err := PlanRestore(ns, c.Own, id)
	if err != nil {
		return err
	}
	fmt.Fprint(env.Out, p.Script())
	if !c.Apply {
		fmt.Fprintln(env.Out, "# dry run: nothing was changed; run again with --apply to perform these steps")
		return nil
	}
	return p.Apply(ctx, env.Client, env.Out)
}

package inject

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
)

// Decide says whether pod, created in ns, is injected. The pod only selects itself (the
// dbaccess label and its product); every setting comes from ns and cfg. A Decision to
// inject may still need CheckSource when Settings.RestoreSource is another namespace.
func Decide(pod *corev1.Pod, ns Namespace, cfg *config.Config) Decision {
	if !ns.Enabled() {
		return skip(ReasonNamespaceNotEnabled)
	}
	if !cfg.DBAccessSelector().Matches(labels.Set(pod.Labels)) {
		return skip(ReasonNotDBAccess)
	}
	product := pod.Labels[contract.LabelProduct]
	if !config.KnownProduct(product) {
		return skip(ReasonUnknownProduct)
	}
	s, d := ParseNamespace(ns, cfg)
	if d != nil {
		return deny(d)
	}
	if s.Product != product {
		return deny(&Denial{ReasonProductMismatch, fmt.Sprintf(
			"pod is labelled %s=%s but namespace %q is %s; the namespace's product decides where backups go",
			contract.LabelProduct, product, ns.Name, s.Product)})
	}
	return Decision{Action: Inject, Reason: ReasonInjected, Settings: s}
}

// NeedsSource reports whether the decision restores from another namespace, which the
// handler must look up and pass to CheckSource.
func (d Decision) NeedsSource() bool {
	return d.Action == Inject && d.Settings.RestoreSource != d.Settings.Namespace
}

// CheckSource applies the LGPD rule to a decision that restores from another namespace:
// the source must exist (source nil: not found), be enabled, be production, be the same
// product and belong to the same customer. Anything else denies the pod. A decision that
// does not need a source is returned unchanged.
func CheckSource(d Decision, source *Namespace) Decision {
	if !d.NeedsSource() {
		return d
	}
	s := d.Settings
	rule := fmt.Sprintf("a %s namespace may restore only from a production namespace of the same customer", s.Environment)
	refuse := func(r Reason, why string) Decision {
		return deny(&Denial{r, fmt.Sprintf("namespace %q may not restore from %q: %s; %s (label %s)",
			s.Namespace, s.RestoreSource, why, rule, contract.LabelRestoreSource)})
	}
	switch {
	case source == nil:
		return refuse(ReasonSourceNotFound, "that namespace does not exist")
	case !source.Enabled():
		return refuse(ReasonSourceNotEnabled, fmt.Sprintf("it is not enabled (%s=true)", contract.LabelEnabled))
	case source.Labels[contract.LabelEnvironment] != contract.EnvironmentProduction:
		return refuse(ReasonSourceNotProduction, fmt.Sprintf("it is not production (%s)", contract.LabelEnvironment))
	case source.Labels[contract.LabelProduct] != s.Product:
		return refuse(ReasonSourceOtherProduct, fmt.Sprintf("it is not product %q (%s)", s.Product, contract.LabelProduct))
	case source.Labels[contract.LabelCustomer] != s.Customer:
		// The other namespace's customer id is not repeated: the message reaches the
		// pod's creator, who may be a tenant.
		return refuse(ReasonSourceOtherCustomer, fmt.Sprintf("it does not belong to customer %q (%s)", s.Customer, contract.LabelCustomer))
	}
	return d
}

// Lookup returns a namespace by name, nil when it does not exist.
type Lookup func(ctx context.Context, name string) (*Namespace, error)

// Run is the whole pipeline on a pod being created in ns: Decide, then CheckSource with
// the source found by lookup (the only I/O, done only when the namespace restores from
// another one), then Apply. The decision is Skip with ReasonAlreadyInjected when Apply
// found nothing to do, and Deny when Apply refuses the pod (the pod is then untouched).
// An error is a failed lookup, never a policy outcome.
func Run(ctx context.Context, pod *corev1.Pod, ns Namespace, lookup Lookup, cfg *config.Config) (Decision, error) {
	d := Decide(pod, ns, cfg)
	if d.NeedsSource() {
		src, err := lookup(ctx, d.Settings.RestoreSource)
		if err != nil {
			return Decision{}, fmt.Errorf("looking up restore source namespace %q: %w", d.Settings.RestoreSource, err)
		}
		d = CheckSource(d, src)
	}
	if d.Action != Inject {
		return d, nil
	}
	before := pod.Annotations[contract.AnnotationInjected] != ""
	changed, denial := Apply(pod, d.Settings, cfg)
	switch {
	case denial != nil:
		return deny(denial), nil
	case !changed:
		d.Action, d.Reason = Skip, ReasonAlreadyInjected
	case before:
		d.Reason = ReasonReinjected
	}
	return d, nil
}

package admission

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartbackup/smartbackup/internal/contract"
)

const (
	// Path is where the webhook server serves the pod defaulter.
	Path = "/mutate-v1-pod"
	// WebhookName is the name of the one webhook in the configuration.
	WebhookName = "dbaccess.smartbackup.io"
	// TimeoutSeconds bounds one admission call. The handler does at most two namespace
	// GETs; 5 s leaves the apiserver's own request deadline intact.
	TimeoutSeconds = 5
	// ServicePort is the Service port the apiserver calls.
	ServicePort = 443
	// MirrorPodCondition is the CEL matchCondition that keeps mirror pods away.
	MirrorPodCondition = `!has(object.metadata.annotations) || !('kubernetes.io/config.mirror' in object.metadata.annotations)`
)

// WebhookConfiguration is the one definition of the webhook's
// MutatingWebhookConfiguration, used by the manifests, the tests and the self-managed
// TLS mode (which patches its caBundle). namespace is the webhook's own namespace and
// service its Service; caBundle may be empty when cert-manager's cainjector fills it.
//
// Why each setting:
//
//   - failurePolicy Fail: a dbaccess pod that starts without the restore init container
//     boots on a missing or stale database and crash-loops, or worse serves an empty
//     one. Refusing the pod until the webhook is back is the safer failure; the
//     StatefulSet or ReplicaSet retries by itself.
//   - namespaceSelector: Fail is only safe when scoped. Only namespaces labelled
//     smartbackup.io/enabled=true are sent, and never kube-system or the webhook's own
//     namespace (by the kubernetes.io/metadata.name label the apiserver sets), so a
//     webhook outage can never block the cluster's own pods or the webhook's
//     replacement pods.
//   - objectSelector app.kubernetes.io/name=dbaccess and smartbackup.io/product in
//     (smarterp, sistemico): every other pod of an enabled namespace (a Smart eSocial
//     dbaccess pod, an unlabelled one, anything else) is admitted without calling the
//     webhook at all (no latency, no outage impact). It must match the operator setting
//     SMARTBACKUP_DBACCESS_LABEL; the product values are the products the webhook knows.
//   - matchConditions: mirror pods (the kubelet's copies of static pods, which no
//     webhook may change) are never sent.
//   - CREATE only: the injection is decided once per pod; pods are immutable where it
//     matters (init containers, volumes).
//   - sideEffects NoneOnDryRun: the webhook records an Event when it denies a pod (an
//     out-of-band write) and skips it for dry-run requests, which is what NoneOnDryRun
//     declares; apart from that it has no side effects.
//   - timeoutSeconds 5: two namespace GETs at most; a slow webhook must not hold pod
//     creation long.
//   - reinvocationPolicy IfNeeded: when a later webhook (a sidecar injector) changes the
//     pod, this one runs again; the status annotation makes that second run a no-op,
//     or re-injects if the other webhook removed or edited the init container.
//   - matchPolicy Equivalent, admissionReviewVersions v1.
func WebhookConfiguration(name, namespace, service string, caBundle []byte) *admissionregistrationv1.MutatingWebhookConfiguration {
	path := Path
	port := int32(ServicePort)
	fail := admissionregistrationv1.Fail
	sideEffects := admissionregistrationv1.SideEffectClassNoneOnDryRun
	timeout := int32(TimeoutSeconds)
	reinvoke := admissionregistrationv1.IfNeededReinvocationPolicy
	equivalent := admissionregistrationv1.Equivalent
	scope := admissionregistrationv1.NamespacedScope
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: map[string]string{contract.LabelManagedBy: contract.ManagedBy},
		},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: WebhookName,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service:  &admissionregistrationv1.ServiceReference{Namespace: namespace, Name: service, Path: &path, Port: &port},
				CABundle: caBundle,
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups:   []string{""},
					APIVersions: []string{"v1"},
					Resources:   []string{"pods"},
					Scope:       &scope,
				},
			}},
			FailurePolicy: &fail,
			MatchPolicy:   &equivalent,
			NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{contract.LabelEnabled: "true"},
				MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key:      corev1.LabelMetadataName,
					Operator: metav1.LabelSelectorOpNotIn,
					Values:   []string{metav1.NamespaceSystem, namespace},
				}},
			},
			ObjectSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{contract.LabelAppName: contract.DBAccessName},
				MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key:      contract.LabelProduct,
					Operator: metav1.LabelSelectorOpIn,
					Values:   []string{contract.ProductSmartERP, contract.ProductSistemico},
				}},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "not-a-mirror-pod",
				Expression: MirrorPodCondition,
			}},
			SideEffects:             &sideEffects,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      &reinvoke,
		}},
	}
}

// Package inject decides whether a pod gets the smartbackup restore init container and
// builds what is injected. It is pure: no Kubernetes client, no clock, no network. The
// admission handler looks up namespaces, calls Decide, CheckSource and Apply, and turns
// the result into a patch, a denial or a log line; the CronJob reconciler reuses
// ParseNamespace so a namespace's pods and its backup job always agree.
//
// The pipeline, as the handler runs it:
//
//  1. Decide: is the namespace enabled, is this a dbaccess pod of a known product, are
//     the namespace's settings valid? (skip, deny or inject, with a Reason)
//  2. CheckSource: when the namespace restores from another namespace, may it?
//  3. Apply: strip everything the webhook owns and build it again from the namespace
//     and the configuration; nothing when the result is the pod as it came.
package inject

// Reason says why a pod was skipped, denied or injected. Reasons are stable strings for
// log lines, metrics and Events.
type Reason string

// Reasons a pod passes through untouched.
const (
	// ReasonNotCreate: the request is not a CREATE (the webhook only mutates new pods).
	ReasonNotCreate Reason = "not_create"
	// ReasonNamespaceNotEnabled: the namespace lacks smartbackup.io/enabled=true.
	ReasonNamespaceNotEnabled Reason = "namespace_not_enabled"
	// ReasonNotDBAccess: the pod does not match the dbaccess selector.
	ReasonNotDBAccess Reason = "not_dbaccess"
	// ReasonUnknownProduct: the pod has no smartbackup.io/product label of a known
	// product (e.g. Smart eSocial, whose databases another team runs).
	ReasonUnknownProduct Reason = "unknown_product"
	// ReasonAlreadyInjected: the pod already carries this exact injection.
	ReasonAlreadyInjected Reason = "already_injected"
)

// Reasons a pod is injected.
const (
	// ReasonInjected: the pod was injected.
	ReasonInjected Reason = "injected"
	// ReasonReinjected: the pod arrived with the status annotation but not exactly this
	// injection (edited, copied from another namespace, or moved by another webhook)
	// and was rebuilt.
	ReasonReinjected Reason = "reinjected"
)

// Reasons a pod is denied: its namespace is enabled and the pod is a dbaccess pod of a
// known product, so starting it without a restore would boot dbaccess on a missing
// database; the message tells the administrator what to fix.
const (
	// ReasonInvalidNamespaceProduct: the namespace's product label is missing or unknown.
	ReasonInvalidNamespaceProduct Reason = "invalid_namespace_product"
	// ReasonProductMismatch: the pod's product differs from its namespace's.
	ReasonProductMismatch Reason = "product_mismatch"
	// ReasonStorageNotConfigured: the operator configured no storage URL for the product.
	ReasonStorageNotConfigured Reason = "storage_not_configured"
	// ReasonInvalidEnvironment: the namespace's environment label is missing or unknown.
	ReasonInvalidEnvironment Reason = "invalid_environment"
	// ReasonMissingCustomer: a non-production namespace has no customer label.
	ReasonMissingCustomer Reason = "missing_customer"
	// ReasonMissingRestoreSource: a non-production namespace names no restore source.
	ReasonMissingRestoreSource Reason = "missing_restore_source"
	// ReasonInvalidRestoreSource: the restore source is not a namespace name.
	ReasonInvalidRestoreSource Reason = "invalid_restore_source"
	// ReasonProductionForeignSource: a production namespace names another namespace as
	// its restore source; production restores only from itself.
	ReasonProductionForeignSource Reason = "production_foreign_source"
	// ReasonInvalidDatabase: a database annotation is missing or malformed.
	ReasonInvalidDatabase Reason = "invalid_database_settings"
	// ReasonInvalidRestoreRequest: a restore-request annotation is malformed.
	ReasonInvalidRestoreRequest Reason = "invalid_restore_request"
	// ReasonSourceNotFound: the restore source namespace does not exist.
	ReasonSourceNotFound Reason = "source_not_found"
	// ReasonSourceNotEnabled: the restore source is not enabled.
	ReasonSourceNotEnabled Reason = "source_not_enabled"
	// ReasonSourceNotProduction: the restore source is not a production namespace.
	ReasonSourceNotProduction Reason = "source_not_production"
	// ReasonSourceOtherCustomer: the restore source belongs to another customer.
	ReasonSourceOtherCustomer Reason = "source_other_customer"
	// ReasonSourceOtherProduct: the restore source is another product.
	ReasonSourceOtherProduct Reason = "source_other_product"
	// ReasonEnvConflict: the pod sets a variable the namespace decides (the database
	// endpoint, name, …) to another value.
	ReasonEnvConflict Reason = "env_conflict"
	// ReasonInvalidTargetContainer: the pod's kubectl.kubernetes.io/default-container
	// annotation names no container of the pod, or every container is a known sidecar.
	ReasonInvalidTargetContainer Reason = "invalid_target_container"
)

// Action is what the handler does with a pod.
type Action int

// Actions.
const (
	// Skip lets the pod through untouched.
	Skip Action = iota
	// Inject mutates the pod (Apply).
	Inject
	// Deny refuses the pod with Decision.Message.
	Deny
)

// String names the action for logs.
func (a Action) String() string {
	switch a {
	case Skip:
		return "skip"
	case Inject:
		return "inject"
	case Deny:
		return "deny"
	}
	return "unknown"
}

// Decision is the outcome of Decide and CheckSource.
type Decision struct {
	Action Action
	Reason Reason
	// Message explains a denial to the pod's creator (and in the Event).
	Message string
	// Settings are the namespace's validated settings when Action is Inject.
	Settings Settings
}

// Denial is an invalid namespace setting or a refused restore source.
type Denial struct {
	Reason  Reason
	Message string
}

// Error is the message, for the pod's creator.
func (d *Denial) Error() string { return d.Message }

func deny(d *Denial) Decision {
	return Decision{Action: Deny, Reason: d.Reason, Message: d.Message}
}

func skip(r Reason) Decision { return Decision{Action: Skip, Reason: r} }

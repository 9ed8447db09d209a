package inject

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
)

// Namespace is the part of a namespace the decisions read: its name and its
// admin-controlled labels and annotations.
type Namespace struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
}

// Enabled reports whether the namespace opted in (smartbackup.io/enabled=true).
func (n Namespace) Enabled() bool { return n.Labels[contract.LabelEnabled] == "true" }

// Settings are a namespace's validated smartbackup settings: where its backups go, whose
// backup it restores and how to reach its database.
type Settings struct {
	Namespace   string
	Product     string
	Environment string
	// Customer may be empty for a production namespace.
	Customer string
	// RestoreSource is the namespace whose latest backup is restored: the namespace
	// itself for production.
	RestoreSource string
	// StorageURL comes from the operator's configuration for Product.
	StorageURL string
	// StoragePath is the directory of a file:/// StorageURL, "" for a bucket.
	StoragePath string

	Endpoint     string
	Port         int
	DatabaseName string
	Codepage     string
	Locale       string
	// Extensions is a normalised comma list ("pg_trgm,unaccent").
	Extensions string
	// SecretName holds DATABASE_USER, DATABASE_PASSWORD, DATABASE_ADMIN_USER and
	// DATABASE_ADMIN_PASSWORD.
	SecretName string
	// MaskingConfigMap, when set, holds the masking SQL run on a restored database.
	MaskingConfigMap string
	// SSLMode is DATABASE_SSLMODE ("" leaves the binaries' default, prefer).
	SSLMode string
	// CAConfigMap or CASecret, when set, holds the database server's CA under the key
	// ca.crt (DATABASE_SSLROOTCERT); at most one is set.
	CAConfigMap string
	CASecret    string

	OnMissingBackup string
	RequestID       string
	RequestSource   string

	// RestoreCPU and RestoreMemory, when set, are the init container's request and
	// limit (canonical quantities); otherwise the configuration's.
	RestoreCPU, RestoreMemory string
}

var (
	databaseNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$-]{0,39}$`)
	extensionRE    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,62}$`)
	requestIDRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

// ParseNamespace validates a namespace's labels and annotations against the operator's
// configuration: ParseBackup's settings plus the restore's (environment, customer,
// restore source, restore requests). It reads nothing from pods. It does not check that
// the namespace is enabled, nor the restore source's own labels (CheckSource does).
func ParseNamespace(ns Namespace, cfg *config.Config) (Settings, *Denial) {
	s, d := ParseBackup(ns, cfg)
	if d != nil {
		return Settings{}, d
	}
	if d := parseSource(ns, &s); d != nil {
		return Settings{}, d
	}
	if d := parseRestore(ns.Name, ns.Annotations, cfg, &s); d != nil {
		return Settings{}, d
	}
	return s, nil
}

// ParseBackup validates what a namespace's backups need: its product (hence the storage
// URL) and its database. The backup CronJob uses only these, so a namespace whose
// restore settings are wrong keeps being backed up.
func ParseBackup(ns Namespace, cfg *config.Config) (Settings, *Denial) {
	s := Settings{Namespace: ns.Name}
	s.Product = ns.Labels[contract.LabelProduct]
	if !config.KnownProduct(s.Product) {
		return Settings{}, &Denial{ReasonInvalidNamespaceProduct, fmt.Sprintf(
			"namespace %q needs label %s set to %s or %s (it chooses where backups go); ask a cluster administrator",
			ns.Name, contract.LabelProduct, contract.ProductSmartERP, contract.ProductSistemico)}
	}
	s.StorageURL = cfg.StorageURL(s.Product)
	if s.StorageURL == "" {
		return Settings{}, &Denial{ReasonStorageNotConfigured, fmt.Sprintf(
			"smartbackup has no storage configured for product %q (namespace %q); ask the smartbackup operators", s.Product, ns.Name)}
	}
	p, err := config.StoragePath(s.StorageURL)
	if err != nil {
		return Settings{}, &Denial{ReasonStorageNotConfigured, fmt.Sprintf(
			"smartbackup's storage URL for product %q is invalid; ask the smartbackup operators", s.Product)}
	}
	s.StoragePath = p
	if p != "" {
		// Each directory of the volume is read only when its marker names its namespace:
		// a mis-bound volume is unreachable, never "no backup".
		s.StorageURL = markedURL(s.StorageURL)
	}
	if d := parseDatabase(ns.Name, ns.Annotations, cfg, &s); d != nil {
		return Settings{}, d
	}
	return s, nil
}

// parseSource reads the environment, the customer and whose backup is restored.
func parseSource(ns Namespace, s *Settings) *Denial {
	l := ns.Labels
	s.Environment = l[contract.LabelEnvironment]
	switch s.Environment {
	case contract.EnvironmentProduction, contract.EnvironmentHomologation, contract.EnvironmentInternalDev:
	default:
		return &Denial{ReasonInvalidEnvironment, fmt.Sprintf(
			"namespace %q needs label %s set to %s, %s or %s; ask a cluster administrator",
			ns.Name, contract.LabelEnvironment, contract.EnvironmentProduction, contract.EnvironmentHomologation, contract.EnvironmentInternalDev)}
	}
	s.Customer = l[contract.LabelCustomer]

	source, hasSource := l[contract.LabelRestoreSource]
	if hasSource && len(validation.IsDNS1123Label(source)) > 0 {
		return &Denial{ReasonInvalidRestoreSource, fmt.Sprintf(
			"namespace %q: label %s=%q is not a namespace name", ns.Name, contract.LabelRestoreSource, source)}
	}
	if s.Environment == contract.EnvironmentProduction {
		if hasSource && source != ns.Name {
			return &Denial{ReasonProductionForeignSource, fmt.Sprintf(
				"namespace %q is production and restores only from itself, but label %s names %q; remove the label",
				ns.Name, contract.LabelRestoreSource, source)}
		}
		s.RestoreSource = ns.Name
		return nil
	}
	if s.Customer == "" {
		return &Denial{ReasonMissingCustomer, fmt.Sprintf(
			"namespace %q is %s and needs label %s: it may restore only from a production namespace of the same customer",
			ns.Name, s.Environment, contract.LabelCustomer)}
	}
	if source == "" {
		return &Denial{ReasonMissingRestoreSource, fmt.Sprintf(
			"namespace %q is %s and needs label %s naming the production namespace of customer %q whose backup it restores",
			ns.Name, s.Environment, contract.LabelRestoreSource, s.Customer)}
	}
	s.RestoreSource = source
	return nil
}

func invalidDatabase(ns, key, value, want string) *Denial {
	return &Denial{ReasonInvalidDatabase, fmt.Sprintf("namespace %q: annotation %s=%q %s", ns, key, value, want)}
}

func parseDatabase(ns string, a map[string]string, cfg *config.Config, s *Settings) *Denial {
	s.Endpoint = a[contract.AnnotationDatabaseEndpoint]
	if s.Endpoint == "" {
		return &Denial{ReasonInvalidDatabase, fmt.Sprintf(
			"namespace %q needs annotation %s (the PostgreSQL host); ask a cluster administrator", ns, contract.AnnotationDatabaseEndpoint)}
	}
	if net.ParseIP(s.Endpoint) == nil && len(validation.IsDNS1123Subdomain(s.Endpoint)) > 0 {
		return invalidDatabase(ns, contract.AnnotationDatabaseEndpoint, s.Endpoint, "must be a host name or an IP address")
	}

	s.Port = cfg.DefaultDatabasePort
	if v, ok := a[contract.AnnotationDatabasePort]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return invalidDatabase(ns, contract.AnnotationDatabasePort, v, "must be a port number 1-65535")
		}
		s.Port = n
	}

	s.DatabaseName = a[contract.AnnotationDatabaseName]
	if s.DatabaseName == "" {
		return &Denial{ReasonInvalidDatabase, fmt.Sprintf(
			"namespace %q needs annotation %s (the database dbaccess uses); ask a cluster administrator", ns, contract.AnnotationDatabaseName)}
	}
	// initrestore's rule: it names its own temporary databases with these infixes.
	if !databaseNameRE.MatchString(s.DatabaseName) || strings.Contains(s.DatabaseName, contract.TempDatabaseSuffix) || strings.Contains(s.DatabaseName, contract.PreviousDatabaseInfix) {
		return invalidDatabase(ns, contract.AnnotationDatabaseName, s.DatabaseName, "must be an identifier of at most 40 characters (letters, digits, _ $ -)")
	}

	s.Codepage = cfg.DefaultCodepage
	if v, ok := a[contract.AnnotationDatabaseCodepage]; ok {
		if !contract.ValidCodepage(v) {
			return invalidDatabase(ns, contract.AnnotationDatabaseCodepage, v, "must be a PostgreSQL encoding name such as WIN1252")
		}
		s.Codepage = v
	}

	if v, ok := a[contract.AnnotationDatabaseLocale]; ok {
		if !contract.ValidLocale(v) {
			return invalidDatabase(ns, contract.AnnotationDatabaseLocale, v, "must be a locale name such as pt_BR.CP1252 or C")
		}
		s.Locale = v
	}

	if v, ok := a[contract.AnnotationDatabaseExtensions]; ok {
		exts, err := parseExtensions(v)
		if err != "" {
			return invalidDatabase(ns, contract.AnnotationDatabaseExtensions, v, err)
		}
		s.Extensions = exts
	}

	s.SecretName = contract.DefaultDatabaseSecret
	if v, ok := a[contract.AnnotationDatabaseSecret]; ok {
		if len(validation.IsDNS1123Subdomain(v)) > 0 {
			return invalidDatabase(ns, contract.AnnotationDatabaseSecret, v, "must be a Secret name")
		}
		s.SecretName = v
	}
	return parseTLS(ns, a, s)
}

// parseTLS reads the database TLS policy: initrestore's and cronbackup's rules, so the
// webhook never injects a setting they would refuse.
func parseTLS(ns string, a map[string]string, s *Settings) *Denial {
	if v, ok := a[contract.AnnotationDatabaseSSLMode]; ok {
		if !contract.ValidSSLMode(v) {
			return invalidDatabase(ns, contract.AnnotationDatabaseSSLMode, v, "must be one of "+strings.Join(contract.SSLModes, ", "))
		}
		s.SSLMode = v
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{contract.AnnotationDatabaseCAConfigMap, &s.CAConfigMap}, {contract.AnnotationDatabaseCASecret, &s.CASecret}} {
		if v, ok := a[f.key]; ok {
			if len(validation.IsDNS1123Subdomain(v)) > 0 {
				return invalidDatabase(ns, f.key, v, "must be a ConfigMap or Secret name (its key ca.crt holds the CA)")
			}
			*f.dst = v
		}
	}
	if s.CAConfigMap != "" && s.CASecret != "" {
		return &Denial{ReasonInvalidDatabase, fmt.Sprintf("namespace %q: set annotation %s or %s, not both",
			ns, contract.AnnotationDatabaseCAConfigMap, contract.AnnotationDatabaseCASecret)}
	}
	if contract.SSLModeNeedsCA(s.SSLMode) && s.CAConfigMap == "" && s.CASecret == "" {
		return &Denial{ReasonInvalidDatabase, fmt.Sprintf("namespace %q: annotation %s=%s needs the server's CA: annotation %s or %s naming a ConfigMap or Secret with the key %s",
			ns, contract.AnnotationDatabaseSSLMode, s.SSLMode, contract.AnnotationDatabaseCAConfigMap, contract.AnnotationDatabaseCASecret, contract.DatabaseCAKey)}
	}
	return nil
}

// parseExtensions normalises "pg_trgm, unaccent" to "pg_trgm,unaccent"; it returns a
// complaint for a malformed list.
func parseExtensions(v string) (string, string) {
	var out []string
	seen := map[string]bool{}
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if !extensionRE.MatchString(e) {
			return "", "must be a comma list of extension names such as pg_trgm,unaccent"
		}
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	if len(out) > 32 {
		return "", "lists more than 32 extensions"
	}
	return strings.Join(out, ","), ""
}

func parseRestore(ns string, a map[string]string, cfg *config.Config, s *Settings) *Denial {
	for _, r := range []struct {
		key  string
		max  string
		dest *string
	}{{contract.AnnotationRestoreCPU, "16", &s.RestoreCPU}, {contract.AnnotationRestoreMemory, "64Gi", &s.RestoreMemory}} {
		v, ok := a[r.key]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() <= 0 || q.Cmp(resource.MustParse(r.max)) > 0 {
			return &Denial{ReasonInvalidRestoreRequest, fmt.Sprintf("namespace %q: annotation %s=%q must be a positive quantity of at most %s",
				ns, r.key, v, r.max)}
		}
		*r.dest = q.String()
	}
	if v, ok := a[contract.AnnotationMaskingConfigMap]; ok {
		if len(validation.IsDNS1123Subdomain(v)) > 0 {
			return &Denial{ReasonInvalidRestoreRequest, fmt.Sprintf("namespace %q: annotation %s=%q must be a ConfigMap name",
				ns, contract.AnnotationMaskingConfigMap, v)}
		}
		s.MaskingConfigMap = v
	} else if s.Environment == contract.EnvironmentInternalDev {
		// LGPD: customer data reaches internal development only masked.
		s.MaskingConfigMap = contract.DefaultMaskingConfigMap
	}
	s.OnMissingBackup = cfg.RestoreOnMissingBackup
	if v, ok := a[contract.AnnotationRestoreOnMissingBackup]; ok {
		if v != contract.OnMissingFail && v != contract.OnMissingEmpty {
			return &Denial{ReasonInvalidRestoreRequest, fmt.Sprintf("namespace %q: annotation %s=%q must be %s or %s",
				ns, contract.AnnotationRestoreOnMissingBackup, v, contract.OnMissingFail, contract.OnMissingEmpty)}
		}
		s.OnMissingBackup = v
	}
	if v, ok := a[contract.AnnotationRestoreRequest]; ok {
		if !requestIDRE.MatchString(v) {
			return &Denial{ReasonInvalidRestoreRequest, fmt.Sprintf("namespace %q: annotation %s=%q must be 1-63 letters, digits, '.', '_' or '-'",
				ns, contract.AnnotationRestoreRequest, v)}
		}
		s.RequestID = v
	}
	if v, ok := a[contract.AnnotationRestoreRequestSource]; ok {
		if v != contract.RequestSourceProduction && v != contract.RequestSourceOwn {
			return &Denial{ReasonInvalidRestoreRequest, fmt.Sprintf("namespace %q: annotation %s=%q must be %s or %s",
				ns, contract.AnnotationRestoreRequestSource, v, contract.RequestSourceProduction, contract.RequestSourceOwn)}
		}
		s.RequestSource = v
	}
	return nil
}

// markedURL adds namespace_marker=true to a file:// storage URL.
func markedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil { // validated by config.StoragePath
		return raw
	}
	q := u.Query()
	q.Set("namespace_marker", "true")
	u.RawQuery = q.Encode()
	return u.String()
}

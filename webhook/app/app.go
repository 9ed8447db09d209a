// Package app assembles the webhook: one controller-runtime manager running the pod
// admission webhook (every replica), the CronJob reconciler (the leader), the
// self-managed certificate keeper when configured (every replica), health and
// readiness probes and the metrics endpoint. main only loads the configuration and
// calls Run; the tests call New and Run against a real apiserver.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/admission"
	"github.com/smartbackup/smartbackup/webhook/certs"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/cronjobs"
	"github.com/smartbackup/smartbackup/webhook/outcomes"
)

// Name is the component name: the event reporter, the leader-election lease and the
// logger's name.
const Name = "smartbackup-webhook"

// Options are knobs for tests; main passes the zero value.
type Options struct {
	// SkipNameValidation allows several managers in one process (tests).
	SkipNameValidation bool
}

// Webhook is an assembled, not yet started, webhook.
type Webhook struct {
	Manager manager.Manager
	// Certs is the self-managed certificate keeper, nil in cert-manager mode.
	Certs  *certs.Manager
	config *config.Config
	// draining is set when the stop begins: readiness fails and every response closes
	// its connection, so the apiserver's next call opens one the Service sends to
	// another replica.
	draining atomic.Bool
}

// cacheScope is what the manager's cache holds beside namespaces: the CronJobs the
// webhook manages, and with file:// storage the backup volumes and claims it makes and
// its provisioning Jobs (in its own namespace only).
func cacheScope(cfg *config.Config) map[client.Object]cache.ByObject {
	managed := labels.SelectorFromSet(labels.Set{contract.LabelManagedBy: contract.ManagedBy})
	products, _ := labels.Parse(contract.LabelProduct + " in (" + contract.ProductSmartERP + "," + contract.ProductSistemico + ")")
	m := map[client.Object]cache.ByObject{
		&batchv1.CronJob{}: {Label: managed},
		// dbaccess pods and backup Jobs' pods, for their outcomes (package outcomes).
		&corev1.Pod{}: {Label: products},
	}
	if cfg.Volume().Kind != "" {
		m[&corev1.PersistentVolume{}] = cache.ByObject{Label: managed}
		m[&corev1.PersistentVolumeClaim{}] = cache.ByObject{Label: managed}
		m[&batchv1.Job{}] = cache.ByObject{Label: managed, Namespaces: map[string]cache.Config{cfg.SyncNamespace: {}}}
	}
	return m
}

// uncompressed is the cluster configuration with gzip off. Asked for it, the apiserver
// compresses every watch stream event by event (a gzip flush per event, 5 % of its CPU
// under a burst of pod creates, measured by the admission bench): a cost the shared
// apiserver pays for every pod, Namespace and CronJob event the webhook's cache takes
// in, to save bytes on the hop from the apiserver to a pod of the same cluster.
func uncompressed(c *rest.Config) *rest.Config {
	c = rest.CopyConfig(c)
	c.DisableCompression = true
	return c
}

// New assembles the manager and registers everything on it.
func New(cfg *config.Config, restConfig *rest.Config, opts Options) (*Webhook, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("building the scheme: %w", err)
	}
	mgr, err := ctrl.NewManager(uncompressed(restConfig), ctrl.Options{
		Scheme:                        scheme,
		Logger:                        logf.Log.WithName(Name),
		Metrics:                       metricsserver.Options{BindAddress: cfg.MetricsAddr},
		HealthProbeBindAddress:        cfg.HealthAddr,
		PprofBindAddress:              cfg.PprofAddr,
		LeaderElection:                cfg.LeaderElection,
		LeaderElectionID:              Name,
		LeaderElectionNamespace:       cfg.Namespace,
		LeaderElectionReleaseOnCancel: true,
		Controller:                    ctrlconfig.Controller{SkipNameValidation: &opts.SkipNameValidation},
		WebhookServer: webhook.NewServer(webhook.Options{
			Port:    cfg.WebhookPort,
			CertDir: cfg.CertDir,
			TLSOpts: []func(*tls.Config){func(c *tls.Config) {
				// HTTP/2 off (Rapid Reset: CVE-2023-44487, CVE-2023-39325); the
				// apiserver falls back to HTTP/1.1.
				c.NextProtos = []string{"http/1.1"}
				c.MinVersion = tls.VersionTLS12
			}},
		}),
		Cache: cache.Options{
			// Only what the reconciler reads is cached: namespaces (small) and the
			// CronJobs, Jobs and backup volumes the webhook manages; never Secrets or
			// Pods.
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject:         cacheScope(cfg),
		},
		Client: client.Options{Cache: &client.CacheOptions{
			DisableFor: []client.Object{&corev1.Secret{}, &admissionregistrationv1.MutatingWebhookConfiguration{}},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}
	// Admissions read namespaces from the cache: register its informer now so that every
	// replica fills it before the webhook serves (the reconciler, which watches
	// namespaces too, runs on the leader only; a lazy informer would make a replica's
	// first admission wait for a full list).
	if _, err := mgr.GetCache().GetInformer(context.Background(), &corev1.Namespace{}); err != nil {
		return nil, fmt.Errorf("watching namespaces: %w", err)
	}
	recorder := mgr.GetEventRecorder(Name)
	w := &Webhook{Manager: mgr, config: cfg}

	mgr.GetWebhookServer().Register(admission.Path, w.closeWhenDraining(admission.NewWebhook(scheme, &admission.Defaulter{
		Config: cfg, Cache: mgr.GetClient(), Reader: mgr.GetAPIReader(), Recorder: recorder,
	})))
	if err := (&cronjobs.Reconciler{Client: mgr.GetClient(), Config: cfg, Recorder: recorder}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("registering the CronJob reconciler: %w", err)
	}
	if err := (&outcomes.Watcher{Client: mgr.GetClient(), Recorder: recorder, Since: time.Now()}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("registering the outcome watcher: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding the health check: %w", err)
	}
	// Ready once the webhook server answers TLS handshakes, i.e. has its certificate.
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return nil, fmt.Errorf("adding the readiness check: %w", err)
	}
	if err := mgr.AddReadyzCheck("not-stopping", func(*http.Request) error {
		if w.draining.Load() {
			return errors.New("stopping")
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("adding the readiness check: %w", err)
	}
	if cfg.TLSMode == config.TLSSelf {
		w.Certs = &certs.Manager{
			Client: mgr.GetClient(), Reader: mgr.GetAPIReader(),
			Namespace: cfg.Namespace, SecretName: cfg.TLSSecretName, WebhookConfigName: cfg.WebhookConfigName,
			CertDir: cfg.CertDir, Interval: cfg.TLSCheckInterval,
			Policy: certs.Policy{
				SANs:         append(certs.ServiceSANs(cfg.ServiceName, cfg.Namespace), cfg.TLSExtraSANs...),
				CAValidity:   cfg.CAValidity,
				CertValidity: cfg.CertValidity,
			},
		}
		if err := mgr.Add(w.Certs); err != nil {
			return nil, fmt.Errorf("adding the certificate keeper: %w", err)
		}
	}
	return w, nil
}

// closeWhenDraining asks the client to close its connection after each response once
// the stop has begun (a kept-alive connection would keep reaching this replica).
func (w *Webhook) closeWhenDraining(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.draining.Load() {
			rw.Header().Set("Connection", "close")
		}
		h.ServeHTTP(rw, r)
	})
}

// Run starts the webhook and blocks until ctx ends and the webhook has stopped. In
// self-managed TLS mode the certificate is in place before the server starts (it reads
// its files at start), and the caBundle is patched as soon as the configuration exists.
//
// When ctx ends (SIGTERM) the webhook drains before it stops: for ShutdownDelay it
// keeps serving, reports not ready and closes each connection after its response, so
// the Service moves the apiserver's calls to the other replicas; then the server
// stops accepting and finishes the requests in flight. A rollout loses no admission.
func (w *Webhook) Run(ctx context.Context) error {
	log := logf.Log.WithName(Name)
	if w.Certs != nil {
		b, err := w.initialCertificate(ctx)
		if err != nil {
			return err
		}
		if err := w.Certs.EnsureCABundle(ctx, b.CABundle); err != nil {
			// Not fatal: the configuration may be applied after the Deployment; the
			// keeper retries at every check.
			log.Error(err, "patching the caBundle failed; retrying at the next check")
		}
	}
	log.Info("starting", "tlsMode", w.config.TLSMode, "webhookPort", w.config.WebhookPort,
		"leaderElection", w.config.LeaderElection, "syncCronJob", w.config.SyncTargetURL != "")
	run, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
			return
		}
		w.draining.Store(true)
		log.Info("stopping: draining connections", "delay", w.config.ShutdownDelay.String())
		select {
		case <-time.After(w.config.ShutdownDelay):
		case <-stopped:
		}
		stop()
	}()
	err := w.Manager.Start(run)
	close(stopped)
	if err != nil {
		return fmt.Errorf("running the manager: %w", err)
	}
	log.Info("stopped")
	return nil
}

// initialCertificate retries for a minute: the apiserver may be briefly unreachable
// when the pod starts.
func (w *Webhook) initialCertificate(ctx context.Context) (certs.Bundle, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	delay := 500 * time.Millisecond
	for {
		b, err := w.Certs.EnsureCertificate(ctx)
		if err == nil {
			return b, nil
		}
		select {
		case <-ctx.Done():
			return certs.Bundle{}, fmt.Errorf("issuing the initial webhook certificate: %w", err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 8*time.Second)
	}
}

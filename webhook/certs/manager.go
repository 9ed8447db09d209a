package certs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/smartbackup/smartbackup/internal/contract"
)

// ErrNoWebhookConfiguration: the MutatingWebhookConfiguration to patch does not exist
// (yet); the manager retries at its next check.
var ErrNoWebhookConfiguration = errors.New("MutatingWebhookConfiguration not found")

// Manager keeps the Secret, the cert directory and the caBundle in step. It is a
// controller-runtime Runnable that runs on every replica (each has its own cert
// directory), without leader election.
type Manager struct {
	// Client writes the Secret and the MutatingWebhookConfiguration.
	Client client.Client
	// Reader reads them uncached (the manager's API reader): the webhook does not
	// watch Secrets cluster-wide.
	Reader            client.Reader
	Namespace         string
	SecretName        string
	WebhookConfigName string
	CertDir           string
	Policy            Policy
	// Interval is the time between checks.
	Interval time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica keeps
// its own files.
func (m *Manager) NeedLeaderElection() bool { return false }

// Start checks every Interval until ctx ends; failures are logged and retried.
func (m *Manager) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("certs")
	t := time.NewTicker(m.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := m.Ensure(ctx); err != nil {
				log.Error(err, "keeping the webhook certificate failed; retrying at the next check", "interval", m.Interval.String())
			}
		}
	}
}

// Ensure runs one check: the certificate (EnsureCertificate), then the caBundle
// (EnsureCABundle).
func (m *Manager) Ensure(ctx context.Context) error {
	b, err := m.EnsureCertificate(ctx)
	if err != nil {
		return err
	}
	return m.EnsureCABundle(ctx, b.CABundle)
}

// EnsureCertificate makes the Secret hold a valid bundle (renewing it when due,
// creating it when missing; a replica that loses a race adopts the winner's) and
// writes its certificate and key into the cert directory when they differ.
//
// A renewed CA is only published (added to the bundle) at first; it signs the
// certificate at a later check, once the webhook configuration's caBundle holds it, so
// no replica serves a certificate the apiserver does not trust yet.
func (m *Manager) EnsureCertificate(ctx context.Context) (Bundle, error) {
	log := logf.FromContext(ctx).WithName("certs")
	now := m.now()
	trusted, err := m.trustedBundle(ctx)
	if err != nil {
		return Bundle{}, err
	}
	var lastErr error
	for range 5 {
		var sec corev1.Secret
		err := m.Reader.Get(ctx, client.ObjectKey{Namespace: m.Namespace, Name: m.SecretName}, &sec)
		exists := err == nil
		if err != nil && !apierrors.IsNotFound(err) {
			return Bundle{}, fmt.Errorf("getting Secret %q: %w", m.Namespace+"/"+m.SecretName, err)
		}
		cur := fromSecret(&sec)
		next, changed, err := Renew(cur, m.Policy, now, trusted)
		if err != nil {
			return Bundle{}, fmt.Errorf("renewing the webhook certificate: %w", err)
		}
		if changed {
			if !exists {
				sec = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: m.SecretName,
					Labels: map[string]string{contract.LabelManagedBy: contract.ManagedBy}}, Type: corev1.SecretTypeTLS}
			}
			toSecret(next, &sec)
			if exists {
				err = m.Client.Update(ctx, &sec)
			} else {
				err = m.Client.Create(ctx, &sec)
			}
			if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
				lastErr = err
				continue // another replica wrote first: read its bundle
			}
			if err != nil {
				return Bundle{}, fmt.Errorf("storing Secret %q: %w", m.Namespace+"/"+m.SecretName, err)
			}
			log.Info("webhook certificate issued", "secret", m.SecretName, "caRenewed", !bytes.Equal(next.CACert, cur.CACert),
				"nextCAPublished", len(next.NextCACert) > 0)
		}
		if err := m.writeFiles(next); err != nil {
			return Bundle{}, err
		}
		return next, nil
	}
	return Bundle{}, fmt.Errorf("storing Secret %q: lost five races with other replicas: %w", m.Namespace+"/"+m.SecretName, lastErr)
}

// trustedBundle is the caBundle the apiserver uses now: the first webhook's of the
// configuration, nil when the configuration does not exist yet.
func (m *Manager) trustedBundle(ctx context.Context) ([]byte, error) {
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	err := m.Reader.Get(ctx, client.ObjectKey{Name: m.WebhookConfigName}, &mwc)
	if apierrors.IsNotFound(err) || (err == nil && len(mwc.Webhooks) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting MutatingWebhookConfiguration %q: %w", m.WebhookConfigName, err)
	}
	return mwc.Webhooks[0].ClientConfig.CABundle, nil
}

// EnsureCABundle sets the caBundle of every webhook of the configuration to bundle.
func (m *Manager) EnsureCABundle(ctx context.Context, bundle []byte) error {
	for range 5 {
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		if err := m.Reader.Get(ctx, client.ObjectKey{Name: m.WebhookConfigName}, &mwc); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("patching the caBundle of %q: %w", m.WebhookConfigName, ErrNoWebhookConfiguration)
			}
			return fmt.Errorf("getting MutatingWebhookConfiguration %q: %w", m.WebhookConfigName, err)
		}
		changed := false
		for i := range mwc.Webhooks {
			if !bytes.Equal(mwc.Webhooks[i].ClientConfig.CABundle, bundle) {
				mwc.Webhooks[i].ClientConfig.CABundle = bundle
				changed = true
			}
		}
		if !changed {
			return nil
		}
		err := m.Client.Update(ctx, &mwc)
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("updating the caBundle of %q: %w", m.WebhookConfigName, err)
		}
		logf.FromContext(ctx).WithName("certs").Info("caBundle updated", "webhookConfiguration", m.WebhookConfigName)
		return nil
	}
	return fmt.Errorf("updating the caBundle of %q: conflicts persisted", m.WebhookConfigName)
}

// writeFiles replaces tls.crt and tls.key when they differ, each by an atomic rename
// so the server's watcher never reads half a file; the key goes first so that a
// certificate is never newer than the key beside it for long.
func (m *Manager) writeFiles(b Bundle) error {
	if err := os.MkdirAll(m.CertDir, 0o700); err != nil {
		return fmt.Errorf("creating cert dir %q: %w", m.CertDir, err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{KeyKey, b.Key}, {KeyCert, b.Cert}} {
		p := filepath.Join(m.CertDir, f.name)
		if have, err := os.ReadFile(p); err == nil && bytes.Equal(have, f.data) {
			continue
		}
		tmp, err := os.CreateTemp(m.CertDir, "."+f.name+"-")
		if err != nil {
			return fmt.Errorf("writing %q: %w", p, err)
		}
		_, werr := tmp.Write(f.data)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr); err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("writing %q: %w", p, err)
		}
		if err := os.Rename(tmp.Name(), p); err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("replacing %q: %w", p, err)
		}
	}
	return nil
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func fromSecret(s *corev1.Secret) Bundle {
	return Bundle{CACert: s.Data[KeyCACert], CAKey: s.Data[KeyCAKey], Cert: s.Data[KeyCert], Key: s.Data[KeyKey],
		NextCACert: s.Data[KeyNextCACert], NextCAKey: s.Data[KeyNextCAKey], CABundle: s.Data[KeyCABundle]}
}

func toSecret(b Bundle, s *corev1.Secret) {
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data[KeyCACert], s.Data[KeyCAKey] = b.CACert, b.CAKey
	s.Data[KeyCert], s.Data[KeyKey] = b.Cert, b.Key
	s.Data[KeyCABundle] = b.CABundle
	if len(b.NextCACert) > 0 {
		s.Data[KeyNextCACert], s.Data[KeyNextCAKey] = b.NextCACert, b.NextCAKey
	} else {
		delete(s.Data, KeyNextCACert)
		delete(s.Data, KeyNextCAKey)
	}
}

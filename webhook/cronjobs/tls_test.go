package cronjobs_test

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// TestBackupDatabaseTLS: the backup CronJob gets the namespace's DATABASE_SSLMODE and
// DATABASE_SSLROOTCERT with the CA mounted read-only where the latter points, as the
// restore init container does; without the annotations it gets neither.
func TestBackupDatabaseTLS(t *testing.T) {
	cfg := configtest.New(t, nil)
	ns := inject.Namespace{
		Name:   "acme-prd",
		Labels: map[string]string{contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSmartERP},
		Annotations: map[string]string{contract.AnnotationDatabaseEndpoint: "pg.example.internal", contract.AnnotationDatabaseName: "erp",
			contract.AnnotationDatabaseSSLMode: "verify-full", contract.AnnotationDatabaseCAConfigMap: "db-ca"},
	}
	pod := backup(t, cfg, ns).Spec.JobTemplate.Spec.Template.Spec
	c := pod.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env[contract.EnvDatabaseSSLMode] != "verify-full" || env[contract.EnvDatabaseSSLRootCert] != "/etc/smartbackup/database-ca/ca.crt" {
		t.Errorf("env %v: want DATABASE_SSLMODE=verify-full and DATABASE_SSLROOTCERT=/etc/smartbackup/database-ca/ca.crt", env)
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == inject.VolumeDatabaseCA && m.MountPath == contract.DatabaseCADir && m.ReadOnly
	}) {
		t.Errorf("mounts %+v: no read-only %s at %s", c.VolumeMounts, inject.VolumeDatabaseCA, contract.DatabaseCADir)
	}
	if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
		return v.Name == inject.VolumeDatabaseCA && v.ConfigMap != nil && v.ConfigMap.Name == "db-ca"
	}) {
		t.Errorf("volumes %+v: no ConfigMap db-ca", pod.Volumes)
	}

	delete(ns.Annotations, contract.AnnotationDatabaseSSLMode)
	delete(ns.Annotations, contract.AnnotationDatabaseCAConfigMap)
	plain := backup(t, cfg, ns).Spec.JobTemplate.Spec.Template.Spec
	for _, e := range plain.Containers[0].Env {
		if e.Name == contract.EnvDatabaseSSLMode || e.Name == contract.EnvDatabaseSSLRootCert {
			t.Errorf("without the annotations the CronJob still gets %s", e.Name)
		}
	}
	if slices.ContainsFunc(plain.Volumes, func(v corev1.Volume) bool { return v.Name == inject.VolumeDatabaseCA }) {
		t.Error("without the annotations the CronJob still mounts the CA")
	}
}

package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// prepareVolumes gives every emptyDir and PVC volume a host directory, and remembers
// per container where its mount paths point.
func (r *podRun) prepareVolumes() error {
	host := map[string]string{}
	for _, v := range r.pod.Spec.Volumes {
		switch {
		case v.EmptyDir != nil:
			host[v.Name] = filepath.Join(r.dir, "volumes", v.Name)
		case v.PersistentVolumeClaim != nil:
			host[v.Name] = filepath.Join(r.agent.Dir, "pvc", r.pod.Namespace, v.PersistentVolumeClaim.ClaimName)
		}
	}
	for _, d := range append([]string{r.dir}, values(host)...) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	r.mounts = map[string]map[string]string{}
	for _, c := range append(append([]corev1.Container{}, r.pod.Spec.InitContainers...), r.pod.Spec.Containers...) {
		m := map[string]string{}
		for _, vm := range c.VolumeMounts {
			if d, ok := host[vm.Name]; ok {
				m[vm.MountPath] = filepath.Join(d, vm.SubPath)
			}
		}
		r.mounts[c.Name] = m
	}
	return nil
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// PVCPath is the host directory standing for a PersistentVolumeClaim.
func (a *Agent) PVCPath(namespace, claim string) string {
	return filepath.Join(a.Dir, "pvc", namespace, claim)
}

// resolveEnv computes a container's environment from its env and envFrom, reading
// Secrets and ConfigMaps through the API, and maps mount paths in values (a path under
// /scratch, file:///backup) to their host directories.
func (r *podRun) resolveEnv(ctx context.Context, c corev1.Container) ([]string, error) {
	vars := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vars[k]; !ok {
			order = append(order, k)
		}
		vars[k] = v
	}
	for _, from := range c.EnvFrom {
		data, err := r.envSource(ctx, from)
		if err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			set(from.Prefix+k, data[k])
		}
	}
	for _, e := range c.Env {
		v, err := r.envValue(ctx, e, vars)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		set(e.Name, v)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+r.mapPaths(c.Name, vars[k]))
	}
	return out, nil
}

func (r *podRun) mapPaths(container, v string) string {
	for mount, host := range r.mounts[container] {
		switch {
		case v == mount || strings.HasPrefix(v, mount+"/"):
			return host + v[len(mount):]
		case strings.HasPrefix(v, "file://"+mount) && (len(v) == len("file://"+mount) || v[len("file://"+mount)] == '/'):
			return "file://" + host + v[len("file://"+mount):]
		}
	}
	return v
}

func (r *podRun) envSource(ctx context.Context, from corev1.EnvFromSource) (map[string]string, error) {
	switch {
	case from.SecretRef != nil:
		s, err := r.agent.Client.CoreV1().Secrets(r.pod.Namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
		if err != nil {
			return nil, optional(from.SecretRef.Optional, err)
		}
		out := map[string]string{}
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out, nil
	case from.ConfigMapRef != nil:
		cm, err := r.agent.Client.CoreV1().ConfigMaps(r.pod.Namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
		if err != nil {
			return nil, optional(from.ConfigMapRef.Optional, err)
		}
		return cm.Data, nil
	}
	return nil, nil
}

func optional(opt *bool, err error) error {
	if opt != nil && *opt {
		return nil
	}
	return err
}

func (r *podRun) envValue(ctx context.Context, e corev1.EnvVar, vars map[string]string) (string, error) {
	if e.ValueFrom == nil {
		return expand(e.Value, vars), nil
	}
	switch vf := e.ValueFrom; {
	case vf.FieldRef != nil:
		return r.field(vf.FieldRef.FieldPath)
	case vf.SecretKeyRef != nil:
		s, err := r.agent.Client.CoreV1().Secrets(r.pod.Namespace).Get(ctx, vf.SecretKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", optional(vf.SecretKeyRef.Optional, err)
		}
		v, ok := s.Data[vf.SecretKeyRef.Key]
		if !ok {
			return "", optional(vf.SecretKeyRef.Optional, fmt.Errorf("secret %q has no key %q", vf.SecretKeyRef.Name, vf.SecretKeyRef.Key))
		}
		return string(v), nil
	case vf.ConfigMapKeyRef != nil:
		cm, err := r.agent.Client.CoreV1().ConfigMaps(r.pod.Namespace).Get(ctx, vf.ConfigMapKeyRef.Name, metav1.GetOptions{})
		if err != nil {
			return "", optional(vf.ConfigMapKeyRef.Optional, err)
		}
		v, ok := cm.Data[vf.ConfigMapKeyRef.Key]
		if !ok {
			return "", optional(vf.ConfigMapKeyRef.Optional, fmt.Errorf("configmap %q has no key %q", vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key))
		}
		return v, nil
	case vf.ResourceFieldRef != nil:
		return "", nil
	}
	return "", fmt.Errorf("unsupported valueFrom")
}

// field answers the downward API's fieldRef paths.
func (r *podRun) field(path string) (string, error) {
	p := r.pod
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "spec.nodeName":
		return r.agent.NodeName, nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "status.podIP", "status.hostIP":
		return "127.0.0.1", nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": p.Labels, "metadata.annotations": p.Annotations} {
		if k, ok := strings.CutPrefix(path, prefix+"['"); ok && strings.HasSuffix(k, "']") {
			return m[strings.TrimSuffix(k, "']")], nil
		}
	}
	return "", fmt.Errorf("unsupported fieldRef %q", path)
}

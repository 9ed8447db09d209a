#!/usr/bin/env bash
# Builds the test servers from source through the Go module proxy and caches them in an
# ignored folder, rebuilding only when a tools module's go.mod/go.sum changes.
#
#   hack/tools/build.sh [gcs|minio|kube|manifests|promtool|all]
#
# Binaries land in ${SMARTBACKUP_TOOLS:-<repo>/.cache/tools}/bin:
#   fake-gcs-server, minio, etcd, kube-apiserver, kube-controller-manager, helm, kustomize
# (the last three form the KUBEBUILDER_ASSETS folder for controller-runtime's envtest),
# the test cluster's node binaries kube-scheduler, kubelet, kube-proxy and kubectl, and
# promtool (the chart's alerting rules are checked and unit-tested with it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${SMARTBACKUP_TOOLS:-$root/.cache/tools}
mkdir -p "$out/bin" "$out/stamps"

# build NAME MODULE_DIR TARGET:OUTPUT...  (RECIPE, LDFLAGS and TAGS from the environment)
build() {
	local name=$1 dir=$2
	shift 2
	local stamp="$out/stamps/$name" want
	# The cache key: the module's pinned versions and the recipe below (bump it when the
	# build command changes).
	want=$( (echo "recipe ${RECIPE:-1}${TAGS:+ tags $TAGS}"; cat "$dir/go.mod" "$dir/go.sum") | sha256sum | cut -d' ' -f1)
	local missing=0 pair
	for pair in "$@"; do
		[ -x "$out/bin/${pair#*:}" ] || missing=1
	done
	if [ "$missing" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		echo "tools: $name is cached in $out/bin"
		return
	fi
	local start=$SECONDS
	echo "tools: building $name (first build is slow; it is cached afterwards)"
	for pair in "$@"; do
		(cd "$dir" && CGO_ENABLED=0 go build -trimpath ${TAGS:+-tags="$TAGS"} -ldflags="${LDFLAGS:--s -w}" -o "$out/bin/${pair#*:}" "${pair%%:*}")
	done
	echo "$want" >"$stamp"
	echo "tools: built $name in $((SECONDS - start))s"
}

what=${1:-all}
case "$what" in
gcs | all) build gcs "$here/gcs" github.com/fsouza/fake-gcs-server:fake-gcs-server ;;&
minio | all) build minio "$here/minio" github.com/minio/minio:minio ;;&
manifests | all)
	build helm "$here/helm" helm.sh/helm/v3/cmd/helm:helm
	build kustomize "$here/kustomize" sigs.k8s.io/kustomize/kustomize/v5:kustomize
	;;&
# Only check rules and test rules are used: without Prometheus' service discoveries (the
# cloud SDKs): 1117 packages instead of 1364.
promtool | all) TAGS=remove_all_sd build promtool "$here/promtool" github.com/prometheus/prometheus/cmd/promtool:promtool ;;&
kube | all)
	# Stamped with their release (else they report v0.0.0-master+$Format:%H$); keep in
	# step with the k8s.io/kubernetes version in kube/go.mod.
	kv=v1.37.2
	v=k8s.io/component-base/version
	RECIPE=2 LDFLAGS="-s -w -X $v.gitVersion=$kv -X $v.gitMajor=1 -X $v.gitMinor=37 -X $v.gitTreeState=clean" \
		build kube "$here/kube" \
		./etcd:etcd \
		k8s.io/kubernetes/cmd/kube-apiserver:kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager:kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler:kube-scheduler \
		k8s.io/kubernetes/cmd/kubelet:kubelet \
		k8s.io/kubernetes/cmd/kube-proxy:kube-proxy \
		k8s.io/kubernetes/cmd/kubectl:kubectl
	;;
gcs | minio | manifests | promtool) ;;
*)
	echo "usage: $0 [gcs|minio|kube|manifests|promtool|all]" >&2
	exit 2
	;;
esac

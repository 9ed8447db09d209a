#!/usr/bin/env bash
# Builds the product's images (webhook, initrestore, cronbackup) from their Dockerfiles
# without a registry or Docker, plus the two images the test cluster needs (a pause
# image for pod sandboxes, and the dbaccess stand-in of the end-to-end story), and saves
# each as a docker-archive tar for `ctr images import`:
#
#   hack/images.sh [OUT_DIR]          (as root; default <repo>/.cache/images)
#
# On a laptop with Docker, `docker build -f webhook/Dockerfile .` builds the same images
# from the official base images; here the Dockerfiles' base stages are replaced through
# their build arguments by images made on this machine:
#   - the binaries, built on the host (static; cgo for libdeflate, linked statically), in an image at /out/;
#   - a Debian bookworm made by mmdebstrap from this machine's apt sources, with
#     postgresql-client-15 (bookworm carries only 15; the real images carry 12 to 17).
# Image names: localhost/smartbackup/{webhook,initrestore,cronbackup}:dev,
# localhost/smartbackup/pause:dev and localhost/erp/dbaccess:2026.11 (the name the
# unmodified example Deployment asks for). A rebuild is skipped when nothing changed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/.cache/images}
if [ "$(id -u)" != 0 ]; then
	echo "images: needs root (buildah's image store and mmdebstrap's chroot)" >&2
	exit 1
fi
for c in buildah mmdebstrap; do
	command -v "$c" >/dev/null || {
		echo "images: $c is missing: run hack/test-deps.sh" >&2
		exit 1
	}
done
ctx=$out/ctx
mkdir -p "$ctx/out/out" "$ctx/out/etc/ssl/certs" "$ctx/empty"
B=(buildah --storage-driver overlay)
start=$SECONDS

# 1. Static binaries: the product's three and the two test programs.
(
	cd "$root"
	for b in webhook initrestore cronbackup test/e2e/dbaccess-standin test/testenv/pause; do
		# Static, with cgo: the gzip layer links libdeflate (internal/gzipx).
		CGO_ENABLED=1 go build -trimpath -tags netgo,osusergo \
			-ldflags='-s -w -linkmode external -extldflags "-static"' -o "$ctx/out/out/$(basename "$b")" "./$b"
		if ldd "$ctx/out/out/$(basename "$b")" >/dev/null 2>&1; then
			echo "images: $b is linked dynamically" >&2
			exit 1
		fi
	done
)
cp /etc/ssl/certs/ca-certificates.crt "$ctx/out/etc/ssl/certs/ca-certificates.crt"

# 2. The Debian base with the PostgreSQL 15 client, cached by what makes it.
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
pkgs=ca-certificates,postgresql-client-15
base_key=$( (echo "base 1 $pkgs"; cat "$sources") | sha256sum | cut -d' ' -f1)
if [ ! -f "$ctx/base.tar" ] || [ "$(cat "$ctx/base.key" 2>/dev/null)" != "$base_key" ]; then
	echo "images: making the Debian bookworm base with mmdebstrap"
	rm -f "$ctx/base.tar"
	# The hook removes the apt lists and sources, so no mirror's name ends up in an image.
	# shellcheck disable=SC2016 # $1 is the hook's argument, expanded by mmdebstrap
	PATH=/usr/sbin:/usr/bin:/sbin:/bin mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
		--aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Languages "none"' \
		--include="$pkgs" \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/etc/apt/sources.list.d/* "$1"/etc/apt/sources.list' \
		bookworm "$ctx/base.tar.part" "$sources"
	mv "$ctx/base.tar.part" "$ctx/base.tar"
	echo "$base_key" >"$ctx/base.key"
fi

# 3. Images, unless the binaries, the base, the Dockerfiles and this script are unchanged.
key=$(cat "$ctx"/out/out/* "$ctx/base.key" "$root"/{webhook,initrestore,cronbackup}/Dockerfile "$0" | sha256sum | cut -d' ' -f1)
names=(webhook initrestore cronbackup pause dbaccess)
have=1
for n in "${names[@]}"; do [ -f "$out/$n.tar" ] || have=0; done
if [ "$have" = 1 ] && [ "$(cat "$out/images.key" 2>/dev/null)" = "$key" ]; then
	echo "images: unchanged in $out"
	exit 0
fi
rm -f "$out/images.key"

# commit CONTAINER IMAGE: the working container becomes the image.
commit() {
	local c=$1 image=$2
	"${B[@]}" commit -q --rm "$c" "$image" >/dev/null
}
c=$("${B[@]}" from scratch)
"${B[@]}" copy "$c" "$ctx/out" / >/dev/null
commit "$c" localhost/smartbackup/binaries:dev

c=$("${B[@]}" from scratch)
"${B[@]}" add "$c" "$ctx/base.tar" / >/dev/null
"${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$c"
commit "$c" localhost/smartbackup/debian-pg15:bookworm

for n in webhook initrestore cronbackup; do
	"${B[@]}" bud -q --layers=false -f "$root/$n/Dockerfile" \
		--build-arg BINARIES=localhost/smartbackup/binaries:dev \
		--build-arg RUNTIME=localhost/smartbackup/debian-pg15:bookworm \
		-t "localhost/smartbackup/$n:dev" "$ctx/empty" >/dev/null
done

# The pod sandbox: test/testenv/pause waits for SIGTERM and reaps children.
c=$("${B[@]}" from scratch)
"${B[@]}" copy "$c" "$ctx/out/out/pause" /pause >/dev/null
"${B[@]}" config --entrypoint '["/pause"]' --user 65535:65535 "$c"
commit "$c" localhost/smartbackup/pause:dev

# dbaccess: the stand-in (test/e2e/dbaccess-standin), non-root like the real one must be.
c=$("${B[@]}" from scratch)
"${B[@]}" copy "$c" "$ctx/out/out/dbaccess-standin" /dbaccess >/dev/null
"${B[@]}" config --entrypoint '["/dbaccess"]' --user 65532:65532 "$c"
commit "$c" localhost/erp/dbaccess:2026.11

save() {
	rm -f "$out/$1.tar"
	"${B[@]}" push -q "$2" "docker-archive:$out/$1.tar.part:$2"
	mv "$out/$1.tar.part" "$out/$1.tar"
}
for n in webhook initrestore cronbackup pause; do save "$n" "localhost/smartbackup/$n:dev"; done
save dbaccess localhost/erp/dbaccess:2026.11
echo "$key" >"$out/images.key"
echo "images: built ${names[*]} in $((SECONDS - start))s into $out"

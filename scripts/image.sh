#!/usr/bin/env bash
# Builds the container images from this repository's build output, offline (nothing is pulled:
# both images are FROM scratch):
#   localhost/faultline-agent:VERSION  (deploy/images/Containerfile.agent: `faultline agent`)
#   localhost/faultline:VERSION        (deploy/images/Containerfile.faultline: every subcommand)
# Both hold one staging root: the faultline binary (debug info stripped), exactly the shared
# libraries `ldd` lists for it and the dynamic loader, the CA bundle libcurl reads
# (/etc/ssl/certs/ca-certificates.crt: webhooks and the Kubernetes API over https), a minimal
# /etc/passwd and /etc/group, and /tmp.
# VERSION: $FAULTLINE_IMAGE_VERSION, else the CMake project version and `git describe --always
# --dirty` of the source tree the build came from (0.1.0-b2be85e).
# Usage: scripts/image.sh [BUILD_DIR]   (default: build/ of this repository)
# Environment: PODMAN, the podman command with any global options (default: podman), for example
#   PODMAN="podman --root /tmp/store --runroot /tmp/run --storage-driver vfs".
# Prints the two image names, one a line, on stdout.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
read -r -a podman <<<"${PODMAN:-podman}"
binary=$build/faultline
[[ -x $binary ]] || { echo "image.sh: $binary is missing: build the faultline target first (scripts/build.sh)" >&2; exit 1; }

if [[ -n ${FAULTLINE_IMAGE_VERSION:-} ]]; then
  version=$FAULTLINE_IMAGE_VERSION
else
  cache_value() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" 2>/dev/null | head -1; }
  version=$(cache_value CMAKE_PROJECT_VERSION)
  source_dir=$(cache_value CMAKE_HOME_DIRECTORY)
  describe=$(git -C "${source_dir:-$repo}" describe --always --dirty 2>/dev/null || true)
  version=${version:-0.0.0}${describe:+-$describe}
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/rootfs
mkdir -p "$root/usr/bin" "$root/etc/ssl/certs" "$root/tmp"
chmod 1777 "$root/tmp"
objcopy --strip-debug "$binary" "$root/usr/bin/faultline"

# Every library at the path the loader found it, the loader at its ELF interpreter path. A library
# ldd cannot find stops the build: the image would not start.
missing=$(ldd "$binary" | awk '/not found/ {print $1}')
[[ -z $missing ]] || { echo "image.sh: ldd cannot find: $missing" >&2; exit 1; }
while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
interp=$(readelf -l "$binary" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[[ -f $root$interp ]] || { echo "image.sh: the loader $interp was not collected" >&2; exit 1; }

ca=/etc/ssl/certs/ca-certificates.crt
if [[ -f $ca ]]; then cp -L "$ca" "$root$ca"; else echo "image.sh: no $ca: https to webhooks will fail" >&2; fi
printf 'root:x:0:0:root:/root:/sbin/nologin\nfaultline:x:65532:65532:faultline:/nonexistent:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nfaultline:x:65532:\nnogroup:x:65534:\n' >"$root/etc/group"

for image in agent faultline; do
  name=localhost/faultline-$image
  [[ $image == faultline ]] && name=localhost/faultline
  "${podman[@]}" build --quiet --pull=never --network=none --build-arg "VERSION=$version" \
    -f "$repo/deploy/images/Containerfile.$image" -t "$name:$version" "$stage" >/dev/null
  echo "$name:$version"
done

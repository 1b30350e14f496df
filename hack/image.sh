#!/usr/bin/env bash
# The operator's OCI image, built without a container engine: Debian's buildah (vfs storage
# driver, no daemon, nothing is run inside a container) assembles an image `from scratch` out of
# a staged root filesystem and writes it to an OCI archive.
#
# The image holds, like a distroless "cc" image but nothing more:
#   /gamecell-operator                      the release binary, stripped (the entrypoint)
#   the ELF interpreter and the shared libraries the binary links (found with ldd: libc, libm,
#     libgcc_s, ...). getaddrinfo needs no other library: since glibc 2.34 the "files" and "dns"
#     NSS modules are built into libc.so.6 (checked below; on an older glibc the script adds
#     libnss_files, libnss_dns and libresolv).
#   /etc/nsswitch.conf                      "hosts: files dns": /etc/hosts (hostAliases) first,
#                                           then DNS, as on any Linux host. Debian 12's glibc
#                                           assumes the same without the file; older ones
#                                           default to "dns [!UNAVAIL=return] files", which
#                                           ignores /etc/hosts while DNS answers.
#   /etc/passwd, /etc/group                 root, nobody and nonroot (65532), the image's user
#   /etc/ssl/certs/ca-certificates.crt      Debian's CA bundle: rustls (native roots) verifies
#                                           the AWS endpoints against it
#   /usr/share/doc/<package>/copyright      the licences of the Debian packages shipped
# No shell, no package manager, nothing writable: it runs with readOnlyRootFilesystem.
# /etc/resolv.conf and /etc/hosts come from the kubelet at run time.
#
# Usage: hack/image.sh [build|ensure]
#   build   (default) install buildah if missing, build the release binary, build the image
#   ensure  install buildah if missing (Debian package buildah: apt-get update, then install)
#
# Environment:
#   IMAGE_NAME       name the image gets in the archive and in buildah's local storage
#                    (default ghcr.io/gamecell-dev/gamecell-operator, the chart's image.repository)
#   IMAGE_TAG        default: the version in Cargo.toml (the chart's appVersion)
#   IMAGE_ARCHIVE    default target/image/gamecell-operator.oci.tar
#   SOURCE_DATE_EPOCH  when set, the image's creation time and file times (reproducible builds)
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HACK_DIR/lib.sh"

CARGO="${CARGO:-cargo}"
CARGO_TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO_ROOT/Cargo.toml" | head -n1)"
DESCRIPTION="$(sed -n 's/^description = "\(.*\)"$/\1/p' "$REPO_ROOT/Cargo.toml" | head -n1)"
LICENSE="$(sed -n 's/^license = "\(.*\)"$/\1/p' "$REPO_ROOT/Cargo.toml" | head -n1)"
IMAGE_NAME="${IMAGE_NAME:-ghcr.io/gamecell-dev/gamecell-operator}"
IMAGE_TAG="${IMAGE_TAG:-$VERSION}"
IMAGE_ARCHIVE="${IMAGE_ARCHIVE:-$REPO_ROOT/target/image/gamecell-operator.oci.tar}"
ENTRYPOINT=/gamecell-operator
NONROOT=65532
ADMIN_PORT=8080
# buildah's image store: outside the repo, shared by every clone on this machine.
BUILDAH_DIR="$CACHE/buildah"
BUILDAH=(buildah --storage-driver vfs --root "$BUILDAH_DIR/storage" --runroot "$BUILDAH_DIR/run")

WORK=""
CTR=""
# On exit: remove the working container (if the build failed before commit) and the staging dir.
cleanup() {
  if [ -n "$CTR" ]; then "${BUILDAH[@]}" rm "$CTR" >/dev/null 2>&1 || true; fi
  if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
}

# apt_install PACKAGE TEST...: install the Debian package unless TEST succeeds (before or once
# another caller holding the lock has installed it).
apt_install() {
  local pkg=$1; shift
  "$@" && return 0
  command -v apt-get >/dev/null || die "$pkg is missing and there is no apt-get: install $pkg"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  log "installing $pkg (Debian package)"
  # A lock file, so parallel callers do not race apt.
  (
    flock 9
    "$@" && exit 0
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$pkg" >/dev/null
  ) 9>"${TMPDIR:-/tmp}/gamecell-apt-install.lock"
  "$@" || die "$pkg still missing after apt-get install $pkg"
}

ensure() {
  apt_install buildah command -v buildah >/dev/null
}

# copy_file SRC ROOTFS [DEST]: copy SRC (following symlinks) to ROOTFS/DEST (default: SRC's path).
copy_file() {
  local src=$1 root=$2 dest=${3:-$1}
  install -D -m "$(stat -L -c %a "$src")" "$src" "$root$dest"
}

# The shared objects a dynamic ELF file needs, with the paths this machine's loader picks
# (ldd also lists the interpreter, under its PT_INTERP path).
needed_libs() {
  local out
  out="$(ldd "$1")" || die "ldd $1 failed: $out"
  if grep -q 'not found' <<<"$out"; then die "ldd $1: a library is missing: $out"; fi
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

stage_rootfs() {
  local root=$1 bin=$2
  install -d -m 0755 "$root/etc/ssl/certs" "$root/usr/share/doc"
  # The binary, stripped of its symbol tables (panics still name the file and line).
  strip --strip-all -o "$root$ENTRYPOINT" "$bin"
  chmod 0755 "$root$ENTRYPOINT"

  local libs libc
  libs="$(needed_libs "$bin")"
  libc="$(grep '/libc\.so\.6$' <<<"$libs")" || die "$bin does not link glibc's libc.so.6; update $0"
  if readelf --dyn-syms -W "$libc" | grep '_nss_dns_gethostbyname4_r' >/dev/null; then
    log "  $libc has the files and dns NSS modules built in (glibc >= 2.34): no libnss_*.so needed"
  else
    log "  $libc loads NSS modules at run time: adding libnss_files, libnss_dns and libresolv"
    local dir mod
    dir="$(dirname "$libc")"
    for mod in libnss_files.so.2 libnss_dns.so.2 libresolv.so.2; do
      [ -e "$dir/$mod" ] || die "$dir/$mod missing"
      libs+=$'\n'"$dir/$mod"$'\n'"$(needed_libs "$dir/$mod")"
    done
  fi
  local lib
  while read -r lib; do copy_file "$lib" "$root"; done < <(sort -u <<<"$libs")

  cat >"$root/etc/nsswitch.conf" <<'EOF'
# Name resolution (glibc NSS). "files" reads /etc/hosts (the kubelet writes it, with hostAliases),
# then "dns" asks the nameservers of /etc/resolv.conf (also from the kubelet).
hosts:     files dns
passwd:    files
group:     files
EOF
  cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:$NONROOT:$NONROOT:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$root/etc/group" <<EOF
root:x:0:
nobody:x:65534:
nonroot:x:$NONROOT:
EOF
  chmod 0644 "$root/etc/nsswitch.conf" "$root/etc/passwd" "$root/etc/group"
  local ca=/etc/ssl/certs/ca-certificates.crt
  apt_install ca-certificates test -s "$ca"
  install -m 0644 "$ca" "$root$ca"

  # The licences of what the image ships, as Debian packages them.
  local f pkg
  command -v dpkg >/dev/null || return 0
  for f in $(sort -u <<<"$libs") ca-certificates; do
    if [ "${f#/}" = "$f" ]; then pkg=$f
    else pkg="$(dpkg -S "$f" 2>/dev/null | head -n1)" || continue; pkg="${pkg%%:*}"; fi
    if [ -f "/usr/share/doc/$pkg/copyright" ] && [ ! -e "$root/usr/share/doc/$pkg/copyright" ]; then
      install -D -m 0644 "/usr/share/doc/$pkg/copyright" "$root/usr/share/doc/$pkg/copyright"
    fi
  done
}

build() {
  ensure
  if ! command -v strip >/dev/null || ! command -v readelf >/dev/null; then
    die "strip or readelf missing: apt-get install binutils"
  fi
  local start=$SECONDS
  log "image $IMAGE_NAME:$IMAGE_TAG: cargo build --release (target dir $CARGO_TARGET; a cold build takes minutes)"
  mkdir -p "$REPO_ROOT/target/image"
  with_progress "cargo build --release" "$REPO_ROOT/target/image/cargo-build.log" \
    "$CARGO" build --release --locked --bin gamecell-operator --manifest-path "$REPO_ROOT/Cargo.toml"
  local bin="$CARGO_TARGET/release/gamecell-operator"
  [ -x "$bin" ] || die "$bin missing after cargo build"

  WORK="$(mktemp -d "${TMPDIR:-/tmp}/gamecell-image.XXXXXX")"
  trap cleanup EXIT
  local work=$WORK
  log "staging the root filesystem"
  stage_rootfs "$work/rootfs" "$bin"
  install -d -m 0755 "$work/rootfs/home"
  install -d -m 0700 "$work/nonroot"

  local revision created arch source=""
  revision="$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  if [ "$revision" != unknown ] && [ -n "$(git -C "$REPO_ROOT" status --porcelain 2>/dev/null)" ]; then
    revision+="-dirty"
  fi
  source="$(git -C "$REPO_ROOT" remote get-url origin 2>/dev/null || true)"
  local commit_opts=()
  if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    created="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
    commit_opts+=(--timestamp "$SOURCE_DATE_EPOCH")
  else
    created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  fi
  case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) arch="$(uname -m)" ;;
  esac

  mkdir -p "$BUILDAH_DIR"
  # One build at a time per storage (make -j, two clones).
  exec 8>"$BUILDAH_DIR/build.lock"
  flock 8
  CTR="$("${BUILDAH[@]}" from --quiet --name "gamecell-operator-build-$$" scratch)"
  local ctr=$CTR
  log "buildah: assembling the image from scratch (working container $ctr)"
  "${BUILDAH[@]}" copy --quiet "$ctr" "$work/rootfs/" / >/dev/null
  "${BUILDAH[@]}" copy --quiet --chown "$NONROOT:$NONROOT" --chmod 0700 "$ctr" "$work/nonroot" /home/nonroot >/dev/null
  local labels=(
    --label "org.opencontainers.image.title=gamecell-operator"
    --label "org.opencontainers.image.description=$DESCRIPTION"
    --label "org.opencontainers.image.version=$VERSION"
    --label "org.opencontainers.image.revision=$revision"
    --label "org.opencontainers.image.licenses=$LICENSE"
    --label "org.opencontainers.image.created=$created"
    --label "org.opencontainers.image.base.name=scratch"
  )
  [ -z "$source" ] || labels+=(--label "org.opencontainers.image.source=$source")
  "${BUILDAH[@]}" config \
    --os linux --arch "$arch" \
    --user "$NONROOT:$NONROOT" \
    --workingdir / \
    --entrypoint "[\"$ENTRYPOINT\"]" \
    --port "$ADMIN_PORT/tcp" \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --stop-signal SIGTERM \
    --created-by "hack/image.sh (buildah from scratch)" \
    "${labels[@]}" \
    "$ctr"
  # Commit to buildah's local storage (so `buildah push` can publish it), then write the archive.
  "${BUILDAH[@]}" commit --quiet --rm --format oci "${commit_opts[@]}" "$ctr" "$IMAGE_NAME:$IMAGE_TAG" >/dev/null
  CTR=""
  rm -f "$IMAGE_ARCHIVE"
  "${BUILDAH[@]}" push --quiet --format oci --digestfile "$work/digest" \
    "$IMAGE_NAME:$IMAGE_TAG" "oci-archive:$IMAGE_ARCHIVE:$IMAGE_NAME:$IMAGE_TAG"
  # Earlier builds of the same tag are now dangling: drop them so the vfs store does not grow.
  "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
  flock -u 8
  cp "$work/digest" "${IMAGE_ARCHIVE%.oci.tar}.digest"

  local bin_size
  bin_size="$(stat -c %s "$work/rootfs$ENTRYPOINT")"
  log "image $IMAGE_NAME:$IMAGE_TAG ($(cat "$work/digest")) built in $((SECONDS - start))s"
  log "  archive $IMAGE_ARCHIVE: $(du -h "$IMAGE_ARCHIVE" | cut -f1) (layer compressed); root filesystem $(du -sh "$work/rootfs" | cut -f1), binary $((bin_size / 1024 / 1024)) MiB stripped (unstripped $(($(stat -c %s "$bin") / 1024 / 1024)) MiB)"
  log "  user $NONROOT:$NONROOT, entrypoint $ENTRYPOINT, port $ADMIN_PORT; revision $revision"
}

case "${1:-build}" in
  ensure) ensure ;;
  build) build ;;
  *) echo "usage: $0 [build|ensure]" >&2; exit 2 ;;
esac

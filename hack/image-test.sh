#!/usr/bin/env bash
# Tests the image `make image` writes (target/image/gamecell-operator.oci.tar) without a container
# engine: containers cannot run here, so the test reads the OCI archive as a registry or a runtime
# would, then runs the binary from the unpacked layer with chroot, as the image's user, with the
# image's environment and nothing from the host.
#
#   1. Layout: index.json -> manifest -> config and layers; every blob's digest and size match.
#   2. Config: User 65532:65532 (numeric, so runAsNonRoot can verify it), Entrypoint
#      /gamecell-operator, port 8080/tcp, the org.opencontainers.image.* labels (version = Cargo.toml,
#      revision = git HEAD), SSL_CERT_FILE.
#   3. Root filesystem: no shell, no setuid file, nothing writable by the user; the shared objects
#      shipped are exactly those the binary needs (its NEEDED closure and the ELF interpreter);
#      the CA bundle, nsswitch.conf, passwd/group; the image's total size under a bound.
#   4. `gamecell-operator --version` runs: the shipped ld.so and libraries suffice.
#   5. Name resolution, in a private network namespace (only its own 127.0.0.1 exists), with a
#      pod-like /etc/resolv.conf (search list, ndots:5) and /etc/hosts written into the unpacked
#      root as the kubelet would mount them, and a stub DNS server on 127.0.0.1:53:
#      `gamecell-operator --resolve HOST` (getaddrinfo, as the AWS and Kubernetes clients resolve)
#      resolves a name only that DNS server knows, and a hostAliases name from /etc/hosts only.
#   6. Negatives, so the checks can fail: an unknown name; nsswitch.conf with `hosts: files` (the
#      DNS name no longer resolves) or `hosts: dns` (the hostAliases name no longer does); the DNS
#      server gone; libc.so.6 or libgcc_s.so.1 removed (the binary no longer starts).
#
# Usage: hack/image-test.sh [ARCHIVE]      (needs root for chroot and unshare: re-runs with sudo)
# Environment: IMAGE_MAX_MIB   bound on the image's size as pulled (compressed), default 32
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$HACK_DIR/lib.sh"

IMAGE_MAX_MIB="${IMAGE_MAX_MIB:-32}"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$REPO_ROOT/Cargo.toml" | head -n1)"
IMAGE_REF="${IMAGE_NAME:-ghcr.io/gamecell-dev/gamecell-operator}:${IMAGE_TAG:-$VERSION}"
DNS_NAME=aws-endpoint.gamecell.test   # known only to the stub DNS server
DNS_ADDR=127.0.0.1
ALIAS_NAME=hostalias.gamecell.test    # known only to /etc/hosts (a pod's hostAliases)
ALIAS_ADDR=127.0.0.2

FAILURES=0
pass() { log "  ok    $*"; }
fail() { log "  FAIL  $*"; FAILURES=$((FAILURES + 1)); }
check() { # check DESC CMD...: pass when CMD succeeds
  local desc=$1; shift
  if "$@"; then pass "$desc"; else fail "$desc"; fi
}

# ---------------------------------------------------------------------------------------------
# Running the image's entrypoint from the unpacked root, as its runtime would: chroot, the
# config's user, the config's environment only (env -i). Sets OUT, ERR and RC.
run_image() {
  local rootfs=$1; shift
  local -a env_vars entrypoint
  mapfile -t env_vars <"$WORK/config.env"
  mapfile -t entrypoint <"$WORK/config.entrypoint"
  RC=0
  env -i "${env_vars[@]}" "$CHROOT" --userspec="$(cat "$WORK/config.user")" "$rootfs" \
    "${entrypoint[@]}" "$@" >"$WORK/out" 2>"$WORK/err" || RC=$?
  OUT="$(cat "$WORK/out")"
  ERR="$(cat "$WORK/err")"
}

# resolve_case DESC EXPECT HOST: --resolve HOST prints EXPECT (an address) or, with EXPECT
# "fail", exits non-zero saying it cannot resolve.
resolve_case() {
  local desc=$1 expect=$2 host=$3
  run_image "$ROOTFS" --resolve "$host"
  if [ "$expect" = fail ]; then
    if [ "$RC" -ne 0 ] && grep -q "cannot resolve $host" <<<"$ERR"; then
      pass "$desc: $host not resolved (${ERR//$'\n'/ })"
    else
      fail "$desc: expected $host to fail, got rc=$RC out='$OUT' err='$ERR'"
    fi
  elif [ "$RC" -eq 0 ] && [ "$OUT" = "$expect" ]; then
    pass "$desc: $host -> $OUT"
  else
    fail "$desc: expected $host -> $expect, got rc=$RC out='$OUT' err='$ERR'"
  fi
}

# A stub DNS server (Python stdlib): answers NAME=ADDR pairs with A records, no AAAA (NOERROR,
# no data), NXDOMAIN for anything else; logs every question.
write_dns_server() {
  cat >"$WORK/dns.py" <<'PY'
import socket, struct, sys
host, port, logpath, readypath = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
zone = dict(arg.lower().split("=", 1) for arg in sys.argv[5:])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((host, port))
log = open(logpath, "a", buffering=1)
open(readypath, "w").close()
while True:
    data, peer = sock.recvfrom(4096)
    if len(data) < 12:
        continue
    qid, flags = struct.unpack("!HH", data[:4])
    i, labels = 12, []
    while i < len(data) and data[i] != 0:
        labels.append(data[i + 1:i + 1 + data[i]].decode("ascii", "replace"))
        i += 1 + data[i]
    qtype, qclass = struct.unpack("!HH", data[i + 1:i + 5])
    question = data[12:i + 5]
    name = ".".join(labels).lower()
    answers = b""
    if name in zone:
        rcode, count = 0, 0
        if qtype == 1 and qclass == 1:
            answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(zone[name])
            count = 1
    else:
        rcode, count = 3, 0
    qname = {1: "A", 28: "AAAA"}.get(qtype, str(qtype))
    log.write(f"{qname} {name} {'NOERROR' if rcode == 0 else 'NXDOMAIN'} answers={count}\n")
    header = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | rcode, 1, count, 0, 0)
    sock.sendto(header + question + answers, peer)
PY
}

# Phase 2, inside a private network namespace (its own loopback, nothing else).
runtime_checks() {
  ip link set lo up
  log "running the binary from the unpacked layer (chroot, user $(cat "$WORK/config.user"), env -i + the config's Env)"
  run_image "$ROOTFS" --version
  check "--version runs with the shipped ld.so and libraries: '$OUT'" \
    test "$RC" -eq 0 -a "$OUT" = "gamecell-operator $VERSION"

  # What the kubelet mounts into every container: /etc/resolv.conf (the pod's DNS, with the
  # namespace search list and ndots:5) and /etc/hosts (with the pod's hostAliases).
  cat >"$ROOTFS/etc/resolv.conf" <<EOF
search gamecell-system.svc.cluster.local svc.cluster.local cluster.local
nameserver $DNS_ADDR
options ndots:5
EOF
  cat >"$ROOTFS/etc/hosts" <<EOF
# Kubernetes-managed hosts file.
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
10.244.0.7	gamecell-operator-7c9d8-x2k4q

# Entries added by HostAliases.
$ALIAS_ADDR	$ALIAS_NAME
EOF
  chmod 0644 "$ROOTFS/etc/resolv.conf" "$ROOTFS/etc/hosts"

  write_dns_server
  : >"$WORK/dns.log"
  python3 "$WORK/dns.py" "$DNS_ADDR" 53 "$WORK/dns.log" "$WORK/dns.ready" "$DNS_NAME=$DNS_ADDR" \
    2>"$WORK/dns.err" &
  DNS_PID=$!
  trap 'kill "$DNS_PID" 2>/dev/null || true' EXIT
  wait_for "the stub DNS server on $DNS_ADDR:53" 10 test -e "$WORK/dns.ready" ||
    { cat "$WORK/dns.err" >&2; die "the stub DNS server did not start"; }

  log "name resolution through glibc (getaddrinfo: /etc/nsswitch.conf, /etc/hosts, /etc/resolv.conf)"
  resolve_case "DNS, through the pod's search list" "$DNS_ADDR" "$DNS_NAME"
  check "  the answer came from the stub DNS server (it logged 'A $DNS_NAME')" \
    grep -q "^A $DNS_NAME NOERROR answers=1$" "$WORK/dns.log"
  check "  the pod's search list was tried first ($(grep -c "^A $DNS_NAME\." "$WORK/dns.log") suffixed queries)" \
    grep -q "^A $DNS_NAME.gamecell-system.svc.cluster.local NXDOMAIN" "$WORK/dns.log"
  resolve_case "/etc/hosts (hostAliases), via 'hosts: files dns'" "$ALIAS_ADDR" "$ALIAS_NAME"
  check "  /etc/hosts answered before DNS was asked (no query for $ALIAS_NAME)" \
    bash -c "! grep -q ' $ALIAS_NAME ' '$WORK/dns.log'"

  log "negatives: the same checks fail when what resolution needs is missing"
  resolve_case "a name nobody knows" fail nx.gamecell.test
  # The image's nsswitch.conf is what glibc reads: change its hosts line and each source goes.
  mv "$ROOTFS/etc/nsswitch.conf" "$WORK/nsswitch.conf"
  printf 'hosts: files\n' >"$ROOTFS/etc/nsswitch.conf"
  resolve_case "nsswitch.conf with 'hosts: files' (no dns)" fail "$DNS_NAME"
  printf 'hosts: dns\n' >"$ROOTFS/etc/nsswitch.conf"
  resolve_case "nsswitch.conf with 'hosts: dns' (no files)" fail "$ALIAS_NAME"
  # Without the file glibc uses its built-in default: "files dns" in Debian 12's glibc 2.36, "dns
  # [!UNAVAIL=return] files" in older ones (which ignores /etc/hosts while DNS answers). Reported,
  # not checked: the image ships the file so it does not depend on the default.
  rm "$ROOTFS/etc/nsswitch.conf"
  run_image "$ROOTFS" --resolve "$ALIAS_NAME"
  log "  info  without nsswitch.conf this glibc resolves $ALIAS_NAME (in /etc/hosts only) to '${OUT:-nothing}' (rc=$RC)"
  mv "$WORK/nsswitch.conf" "$ROOTFS/etc/nsswitch.conf"
  resolve_case "the image's nsswitch.conf restored" "$DNS_ADDR" "$DNS_NAME"
  kill "$DNS_PID"; wait "$DNS_PID" 2>/dev/null || true
  resolve_case "without the DNS server" fail "$DNS_NAME"

  local lib path
  for lib in libc.so.6 libgcc_s.so.1; do
    path="$(cd "$ROOTFS" && find . -name "$lib" -print -quit)"
    if [ -z "$path" ]; then fail "$lib is not in the image"; continue; fi
    mv "$ROOTFS/$path" "$WORK/$lib"
    run_image "$ROOTFS" --version
    if [ "$RC" -ne 0 ] && grep -q "$lib" <<<"$ERR"; then
      pass "without ${path#.} the binary does not start (${ERR//$'\n'/ })"
    else
      fail "without ${path#.} expected a loader error, got rc=$RC out='$OUT' err='$ERR'"
    fi
    mv "$WORK/$lib" "$ROOTFS/$path"
  done
  run_image "$ROOTFS" --version
  check "restored libraries: --version runs again" test "$RC" -eq 0
  exit "$FAILURES"
}

# ---------------------------------------------------------------------------------------------
# Phase 1: read the archive.

# blob DIGEST: path of a blob in the layout, after checking it exists.
blob() {
  local d=$1
  [[ "$d" =~ ^sha256:[0-9a-f]{64}$ ]] || die "unexpected digest $d"
  local p="$LAYOUT/blobs/sha256/${d#sha256:}"
  [ -f "$p" ] || die "blob $d missing from the archive"
  printf '%s' "$p"
}

# verify_descriptor JSON: the blob has the descriptor's digest and size.
verify_descriptor() {
  local digest size p
  digest="$(jq -r .digest <<<"$1")"; size="$(jq -r .size <<<"$1")"
  p="$(blob "$digest")"
  [ "sha256:$(sha256sum "$p" | cut -d' ' -f1)" = "$digest" ] && [ "$(stat -c %s "$p")" = "$size" ]
}

# ELF helpers (binutils).
elf_needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
elf_interp() { readelf -l "$1" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p'; }
# find_lib ROOTFS SONAME: the library's path in ROOTFS, in the loader's default directories.
find_lib() {
  local dir
  for dir in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /lib/aarch64-linux-gnu \
    /usr/lib/aarch64-linux-gnu /lib64 /usr/lib64 /lib /usr/lib; do
    if [ -e "$1$dir/$2" ]; then printf '%s\n' "$dir/$2"; return 0; fi
  done
  return 1
}
# needed_closure ROOTFS FILE...: every shared object FILEs need, transitively, with interpreters.
needed_closure() {
  local root=$1; shift
  local -a queue=("$@")
  local -A seen=()
  local f so p interp
  while [ "${#queue[@]}" -gt 0 ]; do
    f=${queue[0]}; queue=("${queue[@]:1}")
    interp="$(elf_interp "$root$f")"
    if [ -n "$interp" ] && [ -z "${seen[$interp]:-}" ]; then seen[$interp]=1; echo "$interp"; fi
    for so in $(elf_needed "$root$f"); do
      p="$(find_lib "$root" "$so")" || { echo "MISSING:$so"; continue; }
      if [ -z "${seen[$p]:-}" ]; then seen[$p]=1; echo "$p"; queue+=("$p"); fi
    done
  done
}

main() {
  local archive="${1:-${IMAGE_ARCHIVE:-$REPO_ROOT/target/image/gamecell-operator.oci.tar}}"
  [ -f "$archive" ] || die "$archive missing: run make image"
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "the test needs root (chroot, unshare); no sudo"
    log "the test needs root (chroot, unshare): re-running with sudo"
    exec sudo --preserve-env=IMAGE_MAX_MIB,IMAGE_NAME,IMAGE_TAG "$0" "$archive"
  fi
  local t
  for t in jq python3 readelf chroot unshare ip tar sha256sum; do
    command -v "$t" >/dev/null || die "$t missing"
  done
  CHROOT="$(command -v chroot)"
  local start=$SECONDS
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/gamecell-image-test.XXXXXX")"
  # shellcheck disable=SC2064 # expand now
  trap "rm -rf '$WORK'" EXIT
  LAYOUT="$WORK/layout"; ROOTFS="$WORK/rootfs"
  mkdir -p "$LAYOUT" "$ROOTFS"
  log "image test: $archive ($(du -h "$archive" | cut -f1))"
  tar -xf "$archive" -C "$LAYOUT"

  log "OCI layout"
  check "oci-layout version 1.0.0" test "$(jq -r .imageLayoutVersion "$LAYOUT/oci-layout")" = 1.0.0
  local index manifest_desc manifest config_desc config
  index="$LAYOUT/index.json"
  check "index.json holds one image manifest" \
    test "$(jq '[.manifests[] | select(.mediaType == "application/vnd.oci.image.manifest.v1+json")] | length' "$index")" = 1
  check "  named $IMAGE_REF" \
    test "$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' "$index")" = "$IMAGE_REF"
  manifest_desc="$(jq -c '.manifests[0]' "$index")"
  check "  manifest digest and size match" verify_descriptor "$manifest_desc"
  manifest="$(blob "$(jq -r .digest <<<"$manifest_desc")")"
  config_desc="$(jq -c .config "$manifest")"
  check "config is an OCI image config" \
    test "$(jq -r .mediaType <<<"$config_desc")" = application/vnd.oci.image.config.v1+json
  check "  config digest and size match" verify_descriptor "$config_desc"
  config="$(blob "$(jq -r .digest <<<"$config_desc")")"
  local n_layers layer_desc i
  n_layers="$(jq '.layers | length' "$manifest")"
  check "$n_layers layer(s), as many as the config's diff_ids" \
    test "$n_layers" -ge 1 -a "$n_layers" = "$(jq '.rootfs.diff_ids | length' "$config")"
  for ((i = 0; i < n_layers; i++)); do
    layer_desc="$(jq -c ".layers[$i]" "$manifest")"
    check "  layer $i ($(jq -r .mediaType <<<"$layer_desc")) digest and size match" verify_descriptor "$layer_desc"
  done

  log "image config"
  local c=".config"
  check "os linux" test "$(jq -r .os "$config")" = linux
  check "User 65532:65532 (non-root, numeric for runAsNonRoot)" test "$(jq -r "$c.User" "$config")" = 65532:65532
  check "Entrypoint [\"/gamecell-operator\"], no Cmd" \
    test "$(jq -c "[$c.Entrypoint, ($c.Cmd // [])]" "$config")" = '[["/gamecell-operator"],[]]'
  check "ExposedPorts 8080/tcp (the admin server: /livez /readyz /metrics)" \
    test "$(jq -c "$c.ExposedPorts | keys" "$config")" = '["8080/tcp"]'
  check "Env has SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
    bash -c "jq -r '$c.Env[]' '$config' | grep -x SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt >/dev/null"
  local label head
  for label in title description version revision licenses created; do
    check "label org.opencontainers.image.$label = '$(jq -r "$c.Labels[\"org.opencontainers.image.$label\"] // \"\"" "$config")'" \
      test -n "$(jq -r "$c.Labels[\"org.opencontainers.image.$label\"] // \"\"" "$config")"
  done
  check "  version is Cargo.toml's ($VERSION)" \
    test "$(jq -r "$c.Labels[\"org.opencontainers.image.version\"]" "$config")" = "$VERSION"
  head="$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
  check "  revision is git HEAD ($head)" \
    bash -c "[[ '$(jq -r "$c.Labels[\"org.opencontainers.image.revision\"]" "$config")' == $head* ]]"
  jq -r "$c.Env[]" "$config" >"$WORK/config.env"
  jq -r "$c.Entrypoint[]" "$config" >"$WORK/config.entrypoint"
  jq -r "$c.User" "$config" >"$WORK/config.user"

  log "root filesystem (layers unpacked in order)"
  local media p diff_id tarball
  for ((i = 0; i < n_layers; i++)); do
    media="$(jq -r ".layers[$i].mediaType" "$manifest")"
    p="$(blob "$(jq -r ".layers[$i].digest" "$manifest")")"
    tarball="$WORK/layer$i.tar"
    case "$media" in
      application/vnd.oci.image.layer.v1.tar) cp "$p" "$tarball" ;;
      application/vnd.oci.image.layer.v1.tar+gzip) gzip -dc "$p" >"$tarball" ;;
      application/vnd.oci.image.layer.v1.tar+zstd) zstd -dc "$p" >"$tarball" ;;
      *) die "layer $i: unsupported media type $media" ;;
    esac
    diff_id="$(jq -r ".rootfs.diff_ids[$i]" "$config")"
    check "  layer $i uncompressed matches diff_id" test "sha256:$(sha256sum "$tarball" | cut -d' ' -f1)" = "$diff_id"
    if tar -tf "$tarball" | grep '\.wh\.' >/dev/null; then fail "layer $i has whiteouts (a from-scratch image has none)"; fi
    tar --numeric-owner -xpf "$tarball" -C "$ROOTFS"
    rm -f "$tarball"
  done
  local ep=/gamecell-operator
  check "$ep: executable ELF, root-owned, mode 0755" \
    test "$(stat -c '%u:%g %a' "$ROOTFS$ep")" = "0:0 755" -a "$(head -c4 "$ROOTFS$ep" | od -An -c | tr -d ' ')" = '177ELF'
  check "  dynamically linked against glibc (a static glibc binary could not load NSS modules)" \
    test -n "$(elf_interp "$ROOTFS$ep")"
  check "  stripped (no .symtab)" bash -c "! readelf -S -W '$ROOTFS$ep' | grep ' .symtab ' >/dev/null"
  check "no shell or busybox" test -z "$(find "$ROOTFS" \( -name sh -o -name bash -o -name dash -o -name busybox \) -print)"
  check "no setuid/setgid file" test -z "$(find "$ROOTFS" -type f -perm /6000 -print)"
  check "nothing owned by or writable for the user but its home" \
    test -z "$(find "$ROOTFS" \( -user 65532 -o -perm -o+w \) ! -path "$ROOTFS/home/nonroot" ! -type l -print)"
  check "no /etc/resolv.conf or /etc/hosts (the kubelet mounts them)" \
    test ! -e "$ROOTFS/etc/resolv.conf" -a ! -e "$ROOTFS/etc/hosts"
  check "/etc/passwd: nonroot is 65532 with home /home/nonroot" \
    grep -qx 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' "$ROOTFS/etc/passwd"
  check "/etc/group: nonroot is 65532" grep -qx 'nonroot:x:65532:' "$ROOTFS/etc/group"
  check "/etc/nsswitch.conf: 'hosts: files dns'" grep -Eq '^hosts:[[:space:]]+files dns$' "$ROOTFS/etc/nsswitch.conf"
  local certs
  certs="$(grep -c 'BEGIN CERTIFICATE' "$ROOTFS/etc/ssl/certs/ca-certificates.crt" || true)"
  check "CA bundle /etc/ssl/certs/ca-certificates.crt: $certs certificates (rustls native roots)" test "$certs" -ge 100
  if command -v openssl >/dev/null; then
    check "  each certificate parses (openssl storeutl)" test "$(openssl storeutl -noout -certs \
      "$ROOTFS/etc/ssl/certs/ca-certificates.crt" 2>/dev/null | sed -n 's/^Total found: //p')" = "$certs"
  fi

  # Exactly the shared objects the binary needs: its NEEDED closure plus the ELF interpreter, and
  # glibc's NSS modules only where libc does not have them built in (glibc < 2.34).
  local libc expected shipped
  libc="$(find_lib "$ROOTFS" libc.so.6)" || die "libc.so.6 is not in the image"
  expected="$(needed_closure "$ROOTFS" "$ep")"
  if readelf --dyn-syms -W "$ROOTFS$libc" | grep _nss_dns_gethostbyname4_r >/dev/null; then
    pass "the shipped libc.so.6 has the files and dns NSS modules built in (glibc >= 2.34): no libnss_*.so needed"
  else
    local mod
    for mod in libnss_files.so.2 libnss_dns.so.2; do
      p="$(find_lib "$ROOTFS" "$mod")" || { fail "glibc < 2.34 needs $mod in the image"; continue; }
      expected+=$'\n'"$p"$'\n'"$(needed_closure "$ROOTFS" "$p")"
    done
  fi
  check "no library missing from the image ($(grep -c . <<<"$expected") needed)" bash -c "! grep -q MISSING: <<<'$expected'"
  shipped="$(cd "$ROOTFS" && find . \( -name '*.so' -o -name '*.so.*' \) -printf '/%P\n' | sort)"
  check "the shared objects shipped are exactly those: $(tr '\n' ' ' <<<"$shipped")" \
    test "$shipped" = "$(sort -u <<<"$expected")"

  local pulled_bytes rootfs_bytes
  pulled_bytes="$(jq '[.config.size] + [.layers[].size] | add' "$manifest")"
  pulled_bytes=$((pulled_bytes + $(jq -r .size <<<"$manifest_desc")))
  rootfs_bytes="$(du -sb "$ROOTFS" | cut -f1)"
  check "size as pulled $((pulled_bytes / 1024)) KiB (root filesystem $((rootfs_bytes / 1024)) KiB) <= $IMAGE_MAX_MIB MiB" \
    test "$pulled_bytes" -le $((IMAGE_MAX_MIB * 1024 * 1024))

  # Phase 2 in a private network namespace: the stub DNS server's 127.0.0.1:53 is its own, no
  # query leaves it, and nothing on the host's port 53 is in the way.
  # It exits with the number of failed checks.
  export WORK ROOTFS VERSION CHROOT
  local rc=0
  if unshare --net true 2>/dev/null; then
    unshare --net -- "$0" --runtime-checks || rc=$?
  else
    log "unshare --net is not permitted: using the host's 127.0.0.1:53"
    (runtime_checks) || rc=$?
  fi
  FAILURES=$((FAILURES + rc))

  if [ "$FAILURES" -gt 0 ]; then die "image test failed ($FAILURES failed check(s)) after $((SECONDS - start))s"; fi
  log "image test passed in $((SECONDS - start))s: $archive"
}

if [ "${1:-}" = --runtime-checks ]; then
  runtime_checks
else
  main "$@"
fi

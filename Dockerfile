# syntax=docker/dockerfile:1
# The operator's image, for those who build with their own engine (docker, podman, buildah bud):
#
#   docker build -t REGISTRY/gamecell-operator:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# The tested path is `make image` (hack/image.sh, checked by `make image-test`): it assembles the
# equivalent image from scratch with buildah, no engine needed. Both ship the same things: the
# stripped binary as /gamecell-operator, glibc and libgcc_s, /etc/nsswitch.conf ("hosts: files
# dns"), the CA bundle rustls verifies AWS endpoints with, a nonroot user 65532. Here they come from
# distroless "cc", whose Debian 12 glibc (2.36) is the one the build stage links against; keep the
# two stages on the same Debian release.
ARG RUST_VERSION=1.94.1

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The Cargo project (.dockerignore leaves out target/, .git/ and what the binary is not built from).
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin gamecell-operator \
    && strip --strip-all -o /gamecell-operator target/release/gamecell-operator

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="gamecell-operator" \
      org.opencontainers.image.description="Kubernetes operator that runs game backends as isolated cells on AWS" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /gamecell-operator /gamecell-operator
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
# The admin server: /livez, /readyz, /metrics.
EXPOSE 8080
ENTRYPOINT ["/gamecell-operator"]

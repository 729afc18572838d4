# syntax=docker/dockerfile:1
# cdn-task-exporter: build with the official Rust image, run on distroless.
#
#   docker build -t cdn-task-exporter .
#   docker run --rm -p 10052:10052 cdn-task-exporter demo
#   docker run --rm -p 10052:10052 \
#     -v "$PWD/cdn-task-exporter.yml:/etc/cdn-task-exporter/config.yml:ro" \
#     -v cdn-task-exporter-state:/var/lib/cdn-task-exporter \
#     cdn-task-exporter
#
# See docs/deploy.md.

FROM rust:1-bookworm AS build
WORKDIR /src
# The image has no .git; pass the revision for cdn_exporter_build_info:
#   docker build --build-arg REVISION=$(git rev-parse --short=12 HEAD) .
ARG REVISION=unknown
ENV CDN_EXPORTER_REVISION=${REVISION}
# Cargo features: empty for production images (no simulated vendors, no
# server-side verifiers); compose.yaml builds its demo image with "sim".
ARG FEATURES=""
# Dependencies first, so that editing src/ does not refetch crates.
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches ./benches
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cdn-task-exporter --features "${FEATURES}" \
 && cp target/release/cdn-task-exporter /cdn-task-exporter \
 && mkdir /state

# distroless/cc: glibc, libgcc, CA certificates and a "nonroot" user
# (uid 65532), no shell and no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /cdn-task-exporter /usr/local/bin/cdn-task-exporter
# The state directory (--storage.path): cache, covered windows and budget
# journal survive a container restart. Owned by nonroot; a volume, so it
# stays writable with `docker run --read-only` and a named volume or a
# Kubernetes volume can replace it.
COPY --from=build --chown=65532:65532 /state /var/lib/cdn-task-exporter
VOLUME ["/var/lib/cdn-task-exporter"]
USER nonroot:nonroot
# The port from Prometheus' default port allocations (10052).
EXPOSE 10052
# The binary is the entrypoint, so `docker run IMAGE demo`, `... check-config`
# and `... --log.level debug` all pass straight through. The default
# arguments read the config from its documented path and keep the state in
# the volume; when overriding the arguments, repeat
# --config.file=/etc/cdn-task-exporter/config.yml
# --storage.path=/var/lib/cdn-task-exporter.
ENTRYPOINT ["/usr/local/bin/cdn-task-exporter"]
CMD ["--config.file=/etc/cdn-task-exporter/config.yml", "--storage.path=/var/lib/cdn-task-exporter"]

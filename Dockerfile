# houba's runtime image: the release binary on a distroless base (glibc, CA certificates,
# nothing else: no shell, no package manager), running as uid 65532 and happy with a read-only
# root filesystem (mount a volume at HOUBA_CACHE_DIR, and /tmp).
#
#   docker build -t houba:0.1.0 .                                # the default: build from source
#   docker build --target houba-buildctl -t houba:0.1.0-buildctl .   # + buildctl, for BuildKit
#   docker build --target houba-ci -t houba:0.1.0-ci .               # + sh, curl, jq, for CI
#
# The native rebuild needs no builder: buildctl is only for transforms with a `run` step
# (components/buildkitd in deploy/ uses that variant). No `# syntax=` line on purpose: the
# Dockerfile frontend built into the builder is used, so no frontend image is pulled.
#
# Offline (no Docker Hub), override the base images and, if there is no Rust image at hand,
# take a binary built outside (docs/deploy.md, "Building the image"):
#   --build-arg RUNTIME_IMAGE=<a local Debian bookworm image with ca-certificates>
#   --build-arg BINARY=prebuilt   (copies target/docker/houba from the build context)
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot
ARG BUILDKIT_IMAGE=docker.io/moby/buildkit:v0.20.2
ARG CI_IMAGE=docker.io/library/debian:bookworm-slim
# `build` (compile in the image) or `prebuilt` (target/docker/houba from the context).
ARG BINARY=build

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
# The registry index and target/ are cache mounts: a rebuild after a source change recompiles
# houba, not its dependencies. Symbols are stripped (no debugger in the image): 14 MB, not 18.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_PROFILE_RELEASE_STRIP=symbols cargo build --release --locked --bin houba \
    && install -D -m 0755 target/release/houba /out/houba

FROM scratch AS prebuilt
COPY target/docker/houba /out/houba

FROM ${BINARY} AS binary

FROM ${BUILDKIT_IMAGE} AS buildkit

FROM ${RUNTIME_IMAGE} AS houba
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="houba" \
      org.opencontainers.image.description="The single front door for the external container images an organisation runs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
COPY --from=binary /out/houba /usr/local/bin/houba
ENV HOUBA_CACHE_DIR=/var/cache/houba
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/houba"]
CMD ["--help"]

FROM houba AS houba-buildctl
COPY --from=buildkit /usr/bin/buildctl /usr/local/bin/buildctl

# For CI jobs that need a shell around houba (docs/examples/ci/gitlab-ci.yml): sh, curl, jq
# and git next to the same binary. It runs as root, the CI runner's user, because CI runners
# hand the job a checkout owned by root; use the `houba` target everywhere else.
FROM ${CI_IMAGE} AS houba-ci
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="houba-ci" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}"
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl jq git \
    && rm -rf /var/lib/apt/lists/*
COPY --from=binary /out/houba /usr/local/bin/houba

# The default target: the image without buildctl.
FROM houba

# tenantflow's container image: a multi-stage build from the repository's root.
#
#   docker build --build-arg TENANTFLOW_GIT_HASH="$(git rev-parse --short=12 HEAD)" \
#     -t tenantflow:0.1.0 .
#
# Plain, well-known steps only (the project's own CI machines reach no container
# registry, so the image is linted there with hadolint, not built): the official Rust
# image compiles the binary with the locked dependencies; the runtime image is Debian
# slim with CA certificates and an unprivileged user. The admin server listens on all
# interfaces inside the container (port 9464) and logs are JSON lines.

FROM rust:1.89-slim-bookworm AS build
WORKDIR /src
COPY . .
ARG TENANTFLOW_GIT_HASH=unknown
ENV TENANTFLOW_GIT_HASH=${TENANTFLOW_GIT_HASH}
RUN cargo build --release --locked -p tenantflow-cli \
    && install -m 0755 target/release/tenantflow /usr/local/bin/tenantflow

FROM debian:bookworm-slim
# ca-certificates follows the base image's security updates: not pinned on purpose.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --no-create-home \
       --shell /usr/sbin/nologin tenantflow
COPY --from=build /usr/local/bin/tenantflow /usr/local/bin/tenantflow
USER 10001:10001
WORKDIR /tmp
ENV TENANTFLOW_ADMIN=0.0.0.0:9464 \
    TENANTFLOW_LOG_FORMAT=json \
    TENANTFLOW_LOG=info
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s \
    CMD ["/usr/local/bin/tenantflow", "health"]
ENTRYPOINT ["/usr/local/bin/tenantflow"]
CMD ["run", "--help"]

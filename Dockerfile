# syntax=docker/dockerfile:1
# rmhost in a container: build the policies and the binary, then a slim runtime image.
#
#   docker build -t rmhost .
#   docker run --rm -p 7070:7070 -v $PWD/rmhost.toml:/etc/rmhost/rmhost.toml:ro rmhost
#
# Listening beyond loopback needs [auth] (see `rmhost config gen-token`); the image's
# default config (below) listens on 0.0.0.0:7070 and therefore refuses to start until a
# config with an admin token hash is mounted at /etc/rmhost/rmhost.toml.

# ---- build ------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not refetch the registry.
COPY Cargo.toml Cargo.lock ./
COPY host host
COPY tests tests
COPY examples examples
COPY wit wit
COPY policies policies
COPY scripts scripts
# policies/build installs its own toolchains (wasm32 target, clang-22, componentize-py,
# node + npm for componentize-js, PyPI ziglang) as root on Debian 12, the project's machine
# kind, and checks every component it makes.
RUN policies/build
RUN cargo build --release --locked -p rmhost --bin rmhost \
 && strip target/release/rmhost

# ---- runtime ----------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: the platform roots for sslmode=verify-full to a managed PostgreSQL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/rmhost --create-home rmhost \
 && mkdir -p /etc/rmhost/policies
COPY --from=build /src/target/release/rmhost /usr/local/bin/rmhost
COPY --from=build /src/policies/*.wasm /etc/rmhost/policies/
RUN printf 'listen = "0.0.0.0:7070"\n\n[policies]\ndir = "/etc/rmhost/policies"\n' > /etc/rmhost/rmhost.toml
USER rmhost
WORKDIR /var/lib/rmhost
ENV RMHOST_CONFIG=/etc/rmhost/rmhost.toml RMHOST_LOG_FORMAT=json
EXPOSE 7070
# SIGTERM drains; give `docker stop` (or the pod's grace period) more than shutdown_timeout_ms.
STOPSIGNAL SIGTERM
ENTRYPOINT ["rmhost"]
CMD ["run"]

# The bridge's image: `slipway serve` as a non-root user on a slim Debian.
#
#   docker build -t registry.example.com/slipway:0.1.0 .
#
# Untested here: the project's build machines have no container engine, so no test builds this
# file (docs/operations.md, "Running Slipway on Kubernetes"). deploy/kubernetes/ is what the
# tests check.

# --- build -----------------------------------------------------------------------------------
FROM rust:1-trixie AS build
# aws-lc-rs (the one TLS provider) builds its C library with cmake and clang.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cmake clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Without the default `demo` feature: the production binary contains no emulators.
RUN cargo build --release --locked -p slipway-bridge --no-default-features \
 && install -m 0755 target/release/slipway /usr/local/bin/slipway

# --- run -------------------------------------------------------------------------------------
FROM debian:trixie-slim
# ca-certificates: the system roots rustls trusts. bubblewrap: only for `execution.sandbox:
# bwrap` in pods allowed user namespaces (the Kubernetes base runs `none`). `install` (coreutils)
# is what the pod's init container copies the audit key with.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates bubblewrap \
 && rm -rf /var/lib/apt/lists/*
# The CLIs the reads run are not in this image; add the ones your policy uses, pinned, in an
# image built FROM this one (execution.path defaults to /usr/local/bin:/usr/bin:/bin):
#   kubectl (/kubectl, discovery, dry runs), the AWS CLI (/aws), google-cloud-cli (/gcloud, GKE),
#   terraform (/tf plan). /silence and /deploy need none.
COPY --from=build /usr/local/bin/slipway /usr/local/bin/slipway
# A numeric user, so `runAsNonRoot` can verify it without a passwd lookup.
RUN groupadd --gid 10001 slipway \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/slipway \
      --shell /usr/sbin/nologin slipway \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/slipway
USER 10001:10001
# No SLIPWAY_* defaults here: the environment overrides the configuration file, so a variable
# baked in would silently win over `listen:` or `state_dir:`. Outside Kubernetes pass them:
#   docker run -e SLIPWAY_LISTEN=0.0.0.0:3000 -e SLIPWAY_STATE_DIR=/var/lib/slipway …
EXPOSE 3000
ENTRYPOINT ["slipway", "serve"]

# The layerlet image the chart and manifests/kind run: `docker build -t layerlet:0.1.0 .` at
# the top of the repository (scripts/kind-up.sh does it). Untested here: this project's
# machines have no Docker daemon and reach no registry with base images.

# Build: rust:bookworm has the C toolchain the build scripts need (bundled SQLite, zstd,
# aws-lc), the same as scripts/install-build-deps.sh installs on a bare Debian.
FROM rust:bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin layerlet --bin layerlet-monitor \
    && cp target/release/layerlet target/release/layerlet-monitor /usr/local/bin/

# Run: the binary and what the agent runs at run time. Everything else it does (overlay
# mounts, namespaces, cgroups, seccomp, SQLite) is system calls and code of its own.
#   containernetworking-plugins  the CNI plugins (/usr/lib/cni): bridge, host-local,
#                                portmap, loopback for the default network, and the
#                                fallback when the host's /opt/cni/bin lacks one
#   iptables                     portmap's host ports and the bridge's masquerade call it
#                                (Debian's default backend is nft)
#   iproute2                     `ip`, to look at the node's and pods' network from a shell
#   ca-certificates              image pulls from registries over HTTPS
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       containernetworking-plugins iptables iproute2 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# The monitor binary beside layerlet: each container's monitor runs from it (lighter than
# layerlet itself; without it monitors run as `layerlet __monitor`).
COPY --from=build /usr/local/bin/layerlet /usr/local/bin/layerlet-monitor /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/layerlet"]
CMD ["agent", "--help"]

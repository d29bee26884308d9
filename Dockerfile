# rocgw container image: release build, small Debian runtime, non-root user (uid 10001).
# Configuration and certificates are mounted volumes:
#   docker build -t rocgw .
#   docker run -v /etc/rocgw:/etc/rocgw:ro -p 8580:8580 -p 9580:9580 rocgw
# A container listens on 0.0.0.0, so the mounted rocgw.toml must configure a caller check
# ([access] token_env/token_file or allow_cidrs): rocgw refuses to start otherwise.
#
# Base images are pinned to versioned tags (Rust 1.95.0 on Debian 12; the Debian image of a
# dated build); bump both deliberately. Digests are not pinned here: add `@sha256:…` from your
# registry if your policy requires it.

FROM rust:1.95.0-bookworm AS build
WORKDIR /src
# Dependencies first, built on stub sources: this layer is reused until Cargo.toml or
# Cargo.lock change, so an edit to src/ rebuilds rocgw alone.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --bin rocgw \
    && rm -rf src
COPY build.rs ./
COPY src ./src
# The commit `rocgw --version` shows (the context has no .git): docker build --build-arg
# REVISION=$(git rev-parse --short HEAD) .
ARG REVISION=unknown
# The stubs' build is newer than the copied sources: touch them so that cargo rebuilds rocgw.
RUN touch src/main.rs src/lib.rs \
    && ROCGW_GIT_COMMIT="${REVISION}" cargo build --release --locked --bin rocgw

FROM debian:bookworm-20260713-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="rocgw" \
      org.opencontainers.image.description="ROC gateway: SIH to Annuaire AMC and AMC web services" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-20260713-slim"
RUN groupadd --system --gid 10001 rocgw \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/rocgw --create-home \
       --shell /usr/sbin/nologin rocgw
COPY --from=build /src/target/release/rocgw /usr/local/bin/rocgw
ENV ROCGW_CONFIG=/etc/rocgw/rocgw.toml
VOLUME ["/etc/rocgw", "/var/lib/rocgw"]
# Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8580 9580
# The image has no curl: `rocgw probe` asks the admin listener's /readyz (exit 0 on 2xx, 1
# otherwise). Another admin port: -e ROCGW_PROBE_URL=http://127.0.0.1:PORT/readyz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/rocgw", "probe", "--timeout-ms", "4000"]
ENTRYPOINT ["/usr/local/bin/rocgw"]
CMD ["serve", "--log-format", "json"]

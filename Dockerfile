# rocgw container image: release build, small Debian runtime, non-root user.
# Configuration and certificates are mounted volumes:
#   docker run -v /etc/rocgw:/etc/rocgw:ro -p 8580:8580 -p 9580:9580 rocgw
# A container listens on 0.0.0.0, so the mounted rocgw.toml must configure a caller check
# ([access] token_env/token_file or allow_cidrs): rocgw refuses to start otherwise.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY bench ./bench
RUN cargo build --release --locked --bin rocgw

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/rocgw --create-home rocgw
COPY --from=build /src/target/release/rocgw /usr/local/bin/rocgw
ENV ROCGW_CONFIG=/etc/rocgw/rocgw.toml
VOLUME ["/etc/rocgw", "/var/lib/rocgw"]
USER rocgw
EXPOSE 8580 9580
ENTRYPOINT ["/usr/local/bin/rocgw"]
CMD ["serve", "--log-format", "json"]

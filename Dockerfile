# Builds both binaries: `gangway` and `entra-emulator`.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --workspace --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 gangway
COPY --from=build /src/target/release/gangway /src/target/release/entra-emulator /usr/local/bin/
USER gangway
ENTRYPOINT ["gangway"]
CMD ["serve"]

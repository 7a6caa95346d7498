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
# The allocator commits memory as it is used, not a whole arena at once: a sync worker's
# resident set about halves, at no measured cost in speed (README: Performance).
ENV MIMALLOC_ARENA_EAGER_COMMIT=0
ENTRYPOINT ["gangway"]
CMD ["serve"]

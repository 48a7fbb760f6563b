# Builds the single `muninn` binary; any role runs from it.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin muninn

FROM debian:bookworm-slim
COPY --from=build /src/target/release/muninn /usr/local/bin/muninn
EXPOSE 9009 9095
ENTRYPOINT ["muninn"]
CMD ["all", "--data-dir=/data"]

# herald in a container: a release build on Debian's Rust image, then a small Debian runtime with only the binary,
# CA certificates (for HTTPS to Slack, Jira and webhooks) and a non-root user. The store lives in the volume
# /var/lib/herald; mount a configuration at /etc/herald/herald.yaml (without one, the embedded default is used).
#
#   docker build -t herald .
#   docker run -p 9095:9095 -v herald-data:/var/lib/herald herald

FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --package herald --bin herald

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/herald --create-home herald
COPY --from=build /src/target/release/herald /usr/local/bin/herald
USER herald
WORKDIR /var/lib/herald
# Listen on every interface inside the container; keep the store in the volume.
ENV HERALD__SERVER__LISTEN=0.0.0.0:9095 \
    HERALD__STORAGE__URL=sqlite:///var/lib/herald/herald.db
EXPOSE 9095
VOLUME ["/var/lib/herald"]
ENTRYPOINT ["/usr/local/bin/herald"]
CMD ["serve"]

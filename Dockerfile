# herald in a container: a release build in a Rust image, then a runtime image with only the stripped binary, its
# configuration and what it needs from the system (glibc, CA certificates for HTTPS to Slack, Jira and webhooks,
# tzdata for time intervals), running as the non-root uid 65532. The store lives in the volume /var/lib/herald.
#
#   docker build -t herald .
#   docker run -p 127.0.0.1:9095:9095 -v herald-data:/var/lib/herald herald
#
# The image's /etc/herald/herald.yaml (config/container.yaml) listens on 0.0.0.0:9095 and stores under
# /var/lib/herald. A configuration mounted there replaces it whole, so set `server.listen` and `storage.url` in it
# (see deploy/herald.yaml). `herald healthcheck` is the HEALTHCHECK: it asks /-/ready at the configured address.
#
# Both base images are build arguments, for mirrors and offline builds: BUILDER needs cargo and a C compiler,
# RUNTIME glibc, libgcc_s, CA certificates and tzdata (no shell or package manager is used in it).

ARG BUILDER=rust:1.95-bookworm
ARG RUNTIME=gcr.io/distroless/cc-debian12

FROM ${BUILDER} AS build
WORKDIR /src
COPY . .
# Stripped and without debug line tables, for this build only (the project's release profile keeps line tables).
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_PROFILE_RELEASE_DEBUG=false
RUN cargo build --release --locked --package herald --bin herald \
    && install -D -m 0755 target/release/herald /out/herald \
    && install -D -m 0644 config/container.yaml /out/herald.yaml \
    && install -d /out/store

FROM ${RUNTIME}
COPY --from=build /out/herald /usr/local/bin/herald
COPY --from=build /out/herald.yaml /etc/herald/herald.yaml
# Owned by herald's uid, so a new volume mounted here is writable by it.
COPY --from=build --chown=65532:65532 /out/store /var/lib/herald
USER 65532:65532
WORKDIR /var/lib/herald
VOLUME ["/var/lib/herald"]
EXPOSE 9095
# herald drains on SIGTERM (requests, then deliveries in flight) and exits 0 within Docker's default 10 s.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/herald", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/herald"]
CMD ["serve"]

# frp-rs: frps and frpc in one small image. Build it from the repository root:
#   docker build -t frp-rs .
# The image holds no config: mount a directory with frps.toml (or frpc.toml) at /etc/frp.
# Run frps with its config at /etc/frp/frps.toml:
#   docker run -d -v /etc/frp:/etc/frp:ro -p 7000:7000 frp-rs
# or frpc:
#   docker run -d -v /etc/frp:/etc/frp:ro --entrypoint /usr/bin/frpc frp-rs -c /etc/frp/frpc.toml
#
# The build stage runs exactly the build steps of the README (a test checks that they agree).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# build steps (README, "Install": the same commands, in the same order)
RUN cargo build --release
# end of build steps

# Runtime: distroless (glibc, CA certificates, no shell), as the unprivileged "nonroot" user.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/frps /usr/bin/frps
COPY --from=build /src/target/release/frpc /usr/bin/frpc
USER nonroot:nonroot
# bindPort, then the usual vhost HTTP/HTTPS ports and the dashboard/metrics port.
EXPOSE 7000 80 443 7500
ENTRYPOINT ["/usr/bin/frps"]
CMD ["-c", "/etc/frp/frps.toml"]

# discal's two daemons and its client in one small image, built the way
# CoreDNS builds its own: the static binaries first, by `go build` on the
# host, then copied into an empty image. No base image is pulled, so it
# builds offline; deploy/image.sh does both steps:
#
#   bash deploy/image.sh [TAG]       # default discal:latest, with podman or docker
#   docker run --rm -p 7001:7001/udp discal:latest
#
# The build context is the directory image.sh fills with the three
# binaries (CGO_ENABLED=0: Go's own resolver, no C library), not the
# repository. deploy/container_test.go builds this image with podman and
# runs it.

FROM scratch
COPY udpserver udpproxy udpclient /
ARG VERSION=dev
LABEL org.opencontainers.image.title="discal" \
	org.opencontainers.image.description="a distributed calculator: udpserver, udpproxy, udpclient" \
	org.opencontainers.image.version="${VERSION}" \
	org.opencontainers.image.licenses="Apache-2.0"
# Numeric, so that Kubernetes' runAsNonRoot can check it without an
# /etc/passwd (there is none). 65532 is the "nonroot" of distroless images.
USER 65532:65532
# A container's clients never reach it from its own loopback, which is all
# a udpserver answers by default: a published port arrives from the
# bridge's gateway, other containers and pods from their network. So the
# servers of this image answer the private ranges container networks use
# (and loopback); -allow on the command line narrows it, to the proxies'
# addresses. Only udpserver reads DISCAL_ALLOW.
ENV DISCAL_ALLOW=10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7,127.0.0.0/8,::1
# Calculator, status and client ports (UDP), and the HTTP port for
# /metrics, /healthz and /readyz.
EXPOSE 7000/udp 7001/udp 7101/udp 9100/tcp
ENTRYPOINT ["/udpserver"]
CMD ["-addr", "0.0.0.0:7001", "-status-addr", "0.0.0.0:7101", "-http-addr", "0.0.0.0:9100", "-quiet", "-log-format", "json"]

# discal's three daemons and its client in one small image.
#
#   docker build -t discal:latest .
#   docker run --rm discal:latest /udpserver -version
#
# The binaries are static (CGO_ENABLED=0: Go's own resolver and no libc), so
# the final image needs no C library and no shell: distroless's static image
# brings only CA certificates, /etc/passwd with a nonroot user, and tzdata.
# deploy/deploy_test.go builds the same binaries the same way and checks they
# have no ELF interpreter; this file itself is not built by the tests.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so a change to the code does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
	-ldflags "-s -w -X github.com/discal/discal/internal/cli.Version=${VERSION}" \
	-o /out/ ./cmd/udpserver ./cmd/udpproxy ./cmd/udpclient

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/udpserver /out/udpproxy /out/udpclient /
# 65532 is distroless's nonroot; numeric, so that Kubernetes' runAsNonRoot
# can check it without reading /etc/passwd.
USER 65532:65532
# Calculator, status and client ports (UDP), and the HTTP port for
# /metrics, /healthz and /readyz.
EXPOSE 7000/udp 7001/udp 7101/udp 9100/tcp
ENTRYPOINT ["/udpserver"]
CMD ["-addr", "0.0.0.0:7001", "-status-addr", "0.0.0.0:7101", "-http-addr", "0.0.0.0:9100", "-quiet", "-log-format", "json"]

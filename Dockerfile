# syntax=docker/dockerfile:1
# Build a static varsel binary, then run it as a non-root user on a
# distroless base: no shell, no package manager, only the binary and CA certs.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/varsel ./cmd/varsel

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/varsel /usr/local/bin/varsel
USER nonroot:nonroot
WORKDIR /var/lib/varsel
ENV VARSEL_DATA_DIR=/var/lib/varsel \
    VARSEL_HTTP_ADDR=:8080
EXPOSE 8080
# No shell in distroless: the binary checks itself (exit 0 when the local
# serve answers /readyz on VARSEL_HTTP_ADDR).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s CMD ["/usr/local/bin/varsel", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/varsel"]
CMD ["serve"]

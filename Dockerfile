# syntax=docker/dockerfile:1
# Build: docker build -t switchboard .
# Run:   docker run -p 8080:8080 -v switchboard-data:/data switchboard
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/switchboard ./cmd/switchboard \
    && mkdir -p /out/data

# distroless/static: no shell, no package manager, runs as uid 65532 (nonroot).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchboard /usr/local/bin/switchboard
COPY --from=build --chown=65532:65532 /out/data /data
COPY --chown=65532:65532 connectors /connectors
USER 65532:65532
ENV SWITCHBOARD_LISTEN=:8080 \
    SWITCHBOARD_CONNECTORS=/connectors \
    SWITCHBOARD_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve"]

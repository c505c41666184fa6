//go:build tools

// Pins dependencies that packages are still being written against; removed once all are imported.
package main
import (
 _ "github.com/dop251/goja"
 _ "github.com/dop251/goja_nodejs/eventloop"
 _ "github.com/evanw/esbuild/pkg/api"
 _ "gopkg.in/yaml.v3"
 _ "github.com/labstack/echo/v4"
 _ "github.com/nats-io/nats.go/jetstream"
 _ "github.com/nats-io/nats-server/v2/server"
 _ "github.com/redis/go-redis/v9"
 _ "github.com/ohler55/ojg/jp"
 _ "github.com/santhosh-tekuri/jsonschema/v6"
 _ "github.com/tmaxmax/go-sse"
 _ "github.com/cloudevents/sdk-go/v2"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/cenkalti/backoff/v5"
 _ "go.etcd.io/bbolt"
 _ "github.com/coder/websocket"
 _ "golang.org/x/tools/txtar"
 _ "github.com/HdrHistogram/hdrhistogram-go"
)

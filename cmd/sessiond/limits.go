package main

import (
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"

	"github.com/sessiond/sessiond/api/authrpc"
	"github.com/sessiond/sessiond/api/gateway"
	"github.com/sessiond/sessiond/api/httplimit"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/auth/v1/authv1connect"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/cluster/v1/clusterv1connect"
	"github.com/sessiond/sessiond/clients/go/gen/sessiond/session/v1/sessionv1connect"
)

// LimitsConfig bounds every request of the client API (YAML limits:).
type LimitsConfig struct {
	// MaxBodyBytes bounds a request body (default 64 KiB; the bulk-load
	// PreloadService takes up to 80 KiB and Envoy's ext_authz Check up to
	// 1 MiB whatever this says). A larger
	// declared body is refused before it is read: 413, or
	// RESOURCE_EXHAUSTED for an RPC. It also bounds a Connect message
	// after decompression.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxResponseBytes bounds one answer message of a Connect procedure
	// (default 4 MiB, gRPC's default receive limit).
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
	// MaxHeaderBytes bounds a request's headers (default 64 KiB).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ReadHeaderTimeout is how long a client may take to send a request's
	// headers (default 10s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout is how long a client may take to send a request's body
	// after its headers (default 10s): a body trickling in slower is cut.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout is how long a unary answer may take to be written,
	// counted from the request's headers (default 30s). Streams
	// (WatchRevocations, snapshots, profiles) have none.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long (default
	// 2m).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

func defaultLimits() LimitsConfig {
	return LimitsConfig{MaxBodyBytes: httplimit.DefaultMaxBodyBytes, MaxResponseBytes: 4 << 20, MaxHeaderBytes: 64 << 10,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: httplimit.DefaultReadTimeout,
		WriteTimeout: httplimit.DefaultWriteTimeout, IdleTimeout: 2 * time.Minute}
}

// validate reports every bad limits setting.
func (l LimitsConfig) validate() []error {
	var errs []error
	if l.MaxBodyBytes < 1<<10 || l.MaxBodyBytes > 64<<20 {
		errs = append(errs, fmt.Errorf("limits.max_body_bytes %d: between 1024 and 67108864", l.MaxBodyBytes))
	}
	if l.MaxResponseBytes < 64<<10 || l.MaxResponseBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("limits.max_response_bytes %d: between 65536 and 1073741824", l.MaxResponseBytes))
	}
	if l.MaxHeaderBytes < 4<<10 || l.MaxHeaderBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("limits.max_header_bytes %d: between 4096 and 1048576", l.MaxHeaderBytes))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"read_header_timeout", l.ReadHeaderTimeout}, {"read_timeout", l.ReadTimeout}, {"write_timeout", l.WriteTimeout}, {"idle_timeout", l.IdleTimeout}} {
		if d.v < 100*time.Millisecond || d.v > time.Hour {
			errs = append(errs, fmt.Errorf("limits.%s %s: between 100ms and 1h", d.name, d.v))
		}
	}
	if len(errs) == 0 && l.WriteTimeout < l.ReadTimeout {
		errs = append(errs, errors.New("limits.write_timeout: must not be shorter than read_timeout (both count from the request's headers)"))
	}
	return errs
}

// httplimit is the limits of the client API's routes: the defaults, and
// the routes that differ: the bulk load takes larger bodies, streams get no
// write deadline, a bidirectional stream no read deadline either.
func (l LimitsConfig) httplimit() httplimit.Config {
	stream := httplimit.Route{Stream: true}
	rs := map[string]httplimit.Route{
		"/" + authv1connect.PreloadServiceName + "/":             {MaxBodyBytes: max(l.MaxBodyBytes, authrpc.MaxPreloadRequest)},
		gateway.AuthorizationCheckProcedure:                      {MaxBodyBytes: max(l.MaxBodyBytes, gateway.MaxCheckRequestBytes)},
		sessionv1connect.SessionServiceWatchRevocationsProcedure: stream,
		// The console's live revocation feed is the same stream.
		"/console/rpc" + sessionv1connect.SessionServiceWatchRevocationsProcedure: stream,
		clusterv1connect.ClusterServiceSnapshotProcedure:                          stream,
		"/grpc.health.v1.Health/Watch":                                            stream,
		operatorRoutePrefix + "pprof/":                                            stream,
	}
	for _, svc := range []string{grpcreflect.ReflectV1ServiceName, grpcreflect.ReflectV1AlphaServiceName} {
		rs["/"+svc+"/"] = httplimit.Route{Stream: true, Duplex: true}
	}
	return httplimit.Config{MaxBodyBytes: l.MaxBodyBytes, ReadTimeout: l.ReadTimeout, WriteTimeout: l.WriteTimeout, Routes: rs}
}

// connectLimits are the message limits of every Connect handler: the body
// limit after decompression, and the answer limit.
func (l LimitsConfig) connectLimits() connect.HandlerOption {
	return connect.WithHandlerOptions(connect.WithReadMaxBytes(int(l.MaxBodyBytes)), connect.WithSendMaxBytes(int(l.MaxResponseBytes)))
}

module github.com/sessiond/sessiond/clients/go

go 1.26.0

require (
	aidanwoods.dev/go-paseto v1.6.0
	connectrpc.com/connect v1.21.1
	github.com/coder/websocket v1.8.15
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/google/go-cmp v0.7.0
	github.com/hashicorp/golang-lru/v2 v2.0.7
	golang.org/x/crypto v0.58.0
	google.golang.org/protobuf v1.36.12
	gopkg.in/yaml.v3 v3.0.1
)

require (
	aidanwoods.dev/go-result v0.3.1 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

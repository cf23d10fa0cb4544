module github.com/convocore/webhook-gateway/examples/go

go 1.25.0

require (
	github.com/convocore/webhook-gateway/clients/go v0.0.0
	google.golang.org/grpc v1.84.0
	google.golang.org/protobuf v1.36.12
)

require (
	golang.org/x/net v0.57.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/text v0.40.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260706201446-f0a921348800 // indirect
)

// The example builds against the client in this repository; a copy outside
// it drops this line and requires a released version instead.
replace github.com/convocore/webhook-gateway/clients/go => ../../clients/go

// Command subscribe prints the webhook gateway's events of the chosen types,
// one JSON object per line (the protobuf JSON mapping: the payload's keys are
// the sender's, and formData and the *Json fields are JSON text), and keeps
// going across gateway restarts without missing or repeating an event.
//
//	go run ./subscribe -target localhost:50051 -types message_received,lead_captured
//	go run ./subscribe -after_sequence 0    # every event ever accepted, then live
//	GATEWAY_TOKEN=… go run ./subscribe -target gateway:50051 -ca ca.crt
//
// Logs (connections, retries) go to stderr. SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	webhooksv1 "github.com/convocore/webhook-gateway/clients/go/convocore/webhooks/v1"
	"github.com/convocore/webhook-gateway/clients/go/eventstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

func main() {
	target := flag.String("target", "localhost:50051", "the gateway's gRPC address")
	types := flag.String("types", "", "comma-separated event types as the sender names them (e.g. message_received,bug_reported); empty: every type")
	after := flag.Int64("after_sequence", -1, "start after this sequence (0: from the first event); -1: from now")
	fromOldest := flag.Bool("from_oldest", false, "start from the oldest event the gateway retains")
	maxBackoff := flag.Duration("max_backoff", 10*time.Second, "longest wait between reconnection attempts")
	token := flag.String("token", os.Getenv("GATEWAY_TOKEN"), "subscriber token (default $GATEWAY_TOKEN)")
	ca := flag.String("ca", "", "PEM CA bundle: connect over TLS, verifying the gateway with it")
	cert := flag.String("cert", "", "PEM client certificate, with -key, for a gateway that asks for one (mTLS)")
	key := flag.String("key", "", "PEM key of -cert")
	flag.Parse()
	log.SetPrefix("subscribe: ")
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	req, err := request(*types, *after, *fromOldest)
	if err != nil {
		log.Fatal(err)
	}
	creds, err := transport(*ca, *cert, *key)
	if err != nil {
		log.Fatal(err)
	}
	conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(creds))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := eventstream.Config{
		Request:    req,
		MaxBackoff: *maxBackoff,
		Token:      *token,
		OnRetry: func(err error, delay time.Duration) {
			log.Printf("stream broke (%v); resubscribing in %v", err, delay.Round(time.Millisecond))
		},
	}
	out := protojson.MarshalOptions{}
	err = eventstream.Subscribe(ctx, webhooksv1.NewEventStreamServiceClient(conn), cfg,
		func(_ context.Context, ev *webhooksv1.Event) error {
			line, err := out.Marshal(ev)
			if err != nil {
				return err
			}
			_, err = fmt.Printf("%s\n", line)
			return err
		})
	if err != nil && !errors.Is(err, context.Canceled) {
		if info, ok := eventstream.ResumeInfoFromError(err); ok && status.Code(err) == codes.OutOfRange {
			// Only the operator can decide to accept the gap: say how.
			log.Fatalf("cannot resume without a gap: %v; the oldest event retained is %d "+
				"(rerun with -after_sequence %d, or -from_oldest, to accept the gap)",
				err, info.GetOldestAvailableSequence(), info.GetOldestAvailableSequence()-1)
		}
		log.Fatal(err)
	}
}

// transport is TLS when a CA is given (with a client certificate for mTLS),
// plaintext otherwise.
func transport(ca, cert, key string) (credentials.TransportCredentials, error) {
	if ca == "" {
		if cert != "" || key != "" {
			return nil, errors.New("-cert and -key need -ca")
		}
		return insecure.NewCredentials(), nil
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", ca)
	}
	config := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != "" || key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, err
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(config), nil
}

// request builds the SubscribeRequest the flags describe.
func request(types string, after int64, fromOldest bool) (*webhooksv1.SubscribeRequest, error) {
	req := &webhooksv1.SubscribeRequest{}
	for _, t := range strings.Split(types, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		v, ok := webhooksv1.EventType_value["EVENT_TYPE_"+strings.ToUpper(t)]
		if !ok || v == int32(webhooksv1.EventType_EVENT_TYPE_UNSPECIFIED) {
			return nil, fmt.Errorf("unknown event type %q", t)
		}
		req.EventTypes = append(req.EventTypes, webhooksv1.EventType(v))
	}
	switch {
	case fromOldest && after >= 0:
		return nil, errors.New("-from_oldest and -after_sequence are exclusive")
	case fromOldest:
		req.StartPosition = &webhooksv1.SubscribeRequest_FromOldest{FromOldest: true}
	case after >= 0:
		req.StartPosition = &webhooksv1.SubscribeRequest_AfterSequence{AfterSequence: uint64(after)}
	}
	return req, nil
}

// Command consume joins a consumer group of the webhook gateway as one of its
// members and prints each event the gateway hands it, one JSON object per
// line: the member's name, the event's sequence, type and delivery attempt,
// and whether it was acked or nacked. Start several with the same -group and
// different -member names to see the group's events shared among them; stop
// one and the others get the events it held.
//
//	go run ./consume -group crm-sync -member a -types message_received,lead_captured
//	go run ./consume -group crm-sync -member b -fail_types lead_captured   # nacks those
//	GATEWAY_TOKEN=… go run ./consume -target gateway:50051 -ca ca.crt -group crm-sync
//
// The group is created on first use with the -types filter, the start flags,
// -ack_deadline and -max_delivery_attempts; joining an existing group needs
// no filter. Logs (retries, nacks) go to stderr. SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/signal"
	"slices"
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
	"google.golang.org/protobuf/types/known/durationpb"
)

func main() {
	target := flag.String("target", "localhost:50051", "the gateway's gRPC address")
	group := flag.String("group", "", "the consumer group to join (required); created on first use")
	member := flag.String("member", defaultMember(), "this member's name, printed with each event")
	types := flag.String("types", "", "the group's filter when it is created: comma-separated event types as the sender names them; empty: every type")
	failTypes := flag.String("fail_types", "", "comma-separated event types to nack instead of ack, to see redeliveries and dead letters")
	after := flag.Int64("after_sequence", -1, "a new group starts after this sequence (0: from the first event); -1: from now")
	fromOldest := flag.Bool("from_oldest", false, "a new group starts from the oldest event the gateway retains")
	ackDeadline := flag.Duration("ack_deadline", 0, "a new group's ack deadline; 0: the gateway's default (30s)")
	maxAttempts := flag.Uint("max_delivery_attempts", 0, "a new group's deliveries before dead-lettering; 0: the gateway's default (5)")
	maxInFlight := flag.Uint("max_in_flight", 0, "the most events this member holds unacknowledged; 0: the gateway's default (100)")
	maxBackoff := flag.Duration("max_backoff", 10*time.Second, "longest wait between reconnection attempts")
	token := flag.String("token", os.Getenv("GATEWAY_TOKEN"), "subscriber token (default $GATEWAY_TOKEN)")
	ca := flag.String("ca", "", "PEM CA bundle: connect over TLS, verifying the gateway with it")
	cert := flag.String("cert", "", "PEM client certificate, with -key, for a gateway that asks for one (mTLS)")
	key := flag.String("key", "", "PEM key of -cert")
	flag.Parse()
	log.SetPrefix("consume: ")
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	if *group == "" {
		log.Fatal("-group is required")
	}
	req, err := request(*group, *types, *after, *fromOldest)
	if err != nil {
		log.Fatal(err)
	}
	if *ackDeadline > 0 {
		req.AckDeadline = durationpb.New(*ackDeadline)
	}
	if *maxAttempts > math.MaxUint32 || *maxInFlight > math.MaxUint32 {
		log.Fatal("-max_delivery_attempts and -max_in_flight must fit in 32 bits")
	}
	req.MaxDeliveryAttempts = uint32(*maxAttempts)
	req.MaxInFlight = uint32(*maxInFlight)
	failing, err := eventTypes(*failTypes)
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
	cfg := eventstream.ConsumeConfig{
		Request:    req,
		MaxBackoff: *maxBackoff,
		Token:      *token,
		OnRetry: func(err error, delay time.Duration) {
			log.Printf("stream broke (%v); joining again in %v", err, delay.Round(time.Millisecond))
		},
	}
	out := json.NewEncoder(os.Stdout)
	err = eventstream.Consume(ctx, webhooksv1.NewEventStreamServiceClient(conn), cfg,
		func(_ context.Context, ce *webhooksv1.ConsumedEvent) error {
			ev := ce.GetEvent()
			var fail error
			if slices.Contains(failing, ev.GetEventType()) {
				fail = fmt.Errorf("member %s fails %s events (-fail_types)", *member, ev.GetTypeRaw())
			}
			line := printed{
				Member:   *member,
				Sequence: ev.GetSequence(),
				Type:     ev.GetTypeRaw(),
				Attempt:  ce.GetDeliveryAttempt(),
				Outcome:  "ack",
			}
			if fail != nil {
				line.Outcome = "nack"
			}
			if err := out.Encode(line); err != nil {
				// Unprinted, so not handled: the gateway delivers it again.
				return err
			}
			if fail != nil {
				log.Printf("nacking %d (attempt %d): %v", ev.GetSequence(), ce.GetDeliveryAttempt(), fail)
			}
			return fail
		})
	if err != nil && !errors.Is(err, context.Canceled) {
		if info, ok := eventstream.ResumeInfoFromError(err); ok && status.Code(err) == codes.OutOfRange {
			// Only the operator can decide to accept the gap.
			log.Fatalf("the group cannot go on without a gap: %v; the oldest event retained is %d "+
				"(SeekConsumerGroup to after_sequence %d accepts the gap)",
				err, info.GetOldestAvailableSequence(), info.GetOldestAvailableSequence()-1)
		}
		log.Fatal(err)
	}
}

// printed is one line of output.
type printed struct {
	Member   string `json:"member"`
	Sequence uint64 `json:"sequence"`
	Type     string `json:"type"`
	Attempt  uint32 `json:"attempt"`
	Outcome  string `json:"outcome"`
}

func defaultMember() string {
	host, err := os.Hostname()
	if err != nil {
		host = "member"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
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

// eventTypes parses comma-separated event types as the sender names them.
func eventTypes(list string) ([]webhooksv1.EventType, error) {
	var out []webhooksv1.EventType
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		v, ok := webhooksv1.EventType_value["EVENT_TYPE_"+strings.ToUpper(t)]
		if !ok || v == int32(webhooksv1.EventType_EVENT_TYPE_UNSPECIFIED) {
			return nil, fmt.Errorf("unknown event type %q", t)
		}
		out = append(out, webhooksv1.EventType(v))
	}
	return out, nil
}

// request builds the first ConsumeRequest the flags describe.
func request(group, types string, after int64, fromOldest bool) (*webhooksv1.ConsumeRequest, error) {
	filter, err := eventTypes(types)
	if err != nil {
		return nil, err
	}
	req := &webhooksv1.ConsumeRequest{ConsumerGroup: group, EventTypes: filter}
	switch {
	case fromOldest && after >= 0:
		return nil, errors.New("-from_oldest and -after_sequence are exclusive")
	case fromOldest:
		req.StartPosition = &webhooksv1.ConsumeRequest_FromOldest{FromOldest: true}
	case after >= 0:
		req.StartPosition = &webhooksv1.ConsumeRequest_AfterSequence{AfterSequence: uint64(after)}
	}
	return req, nil
}

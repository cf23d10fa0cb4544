// Package eventstream subscribes to the webhook gateway's EventStreamService
// and keeps the subscription going across disconnects and gateway restarts:
// after a break it subscribes again after the last event it delivered (or,
// before the first event, after the position the gateway reported in the
// error's ResumeInfo), with exponential backoff, so the handler sees every
// matching event once and in sequence order.
//
// Each SubscribeResponse carries either 1 to max_events_per_response events
// or a Heartbeat; Subscribe hands the events to the handler one at a time.
// Handlers should switch on Event.GetEventType(); the payloads' free-form
// JSON (FormPayload.form_data_json, Event.other_json, the *_extras_json
// fields) is text holding one JSON object with every number as sent: decode
// it with encoding/json's Decoder.UseNumber to keep the values exact.
//
//	conn, _ := grpc.NewClient("localhost:50051",
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//	req := &webhooksv1.SubscribeRequest{
//		EventTypes: []webhooksv1.EventType{webhooksv1.EventType_EVENT_TYPE_MESSAGE_RECEIVED},
//	}
//	err := eventstream.Subscribe(ctx, webhooksv1.NewEventStreamServiceClient(conn),
//		eventstream.Config{Request: req},
//		func(ctx context.Context, ev *webhooksv1.Event) error {
//			fmt.Println(ev.GetSequence(), ev.GetEventType())
//			return nil
//		})
//	if info, ok := eventstream.ResumeInfoFromError(err); ok {
//		// e.g. OUT_OF_RANGE: events up to info.GetOldestAvailableSequence()-1
//		// are gone; subscribing with after_sequence set to that accepts the gap.
//	}
//
// Consume joins a consumer group instead, where the gateway keeps the
// position and each event goes to one of the group's members: the handler's
// nil acks an event, an error nacks it, and a break is rejoined.
//
//	err := eventstream.Consume(ctx, webhooksv1.NewEventStreamServiceClient(conn),
//		eventstream.ConsumeConfig{Request: &webhooksv1.ConsumeRequest{ConsumerGroup: "crm-sync"}},
//		func(ctx context.Context, ev *webhooksv1.ConsumedEvent) error {
//			return sendToCRM(ctx, ev.GetEvent())
//		})
package eventstream

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"time"

	webhooksv1 "github.com/convocore/webhook-gateway/clients/go/convocore/webhooks/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Handler receives each event once, in sequence order. Returning an error
// ends Subscribe with that error; the event is then not counted as seen.
type Handler func(ctx context.Context, ev *webhooksv1.Event) error

// Config says what to subscribe to and how to retry.
type Config struct {
	// Request holds the filters and the first start position; nil means every
	// event type, from now. Once an event has been delivered, every
	// resubscription uses after_sequence = the last delivered sequence
	// instead. Before the first event, a break whose error carries a
	// ResumeInfo (the gateway's UNAVAILABLE and RESOURCE_EXHAUSTED stream
	// ends) makes the resubscription use after_sequence =
	// ResumeInfo.last_sent_sequence, the position the start resolved to, so
	// that a subscription from now misses nothing accepted while it was
	// reconnecting. A break without one (e.g. the gateway was unreachable)
	// keeps the start position as it was. When MaxEventsPerResponse is 0,
	// DefaultMaxEventsPerResponse is sent (what the gateway takes 0 to mean);
	// the handler gets one event at a time whatever the response size.
	Request *webhooksv1.SubscribeRequest
	// Delay before the first retry after a break; default 100 ms. Each
	// further consecutive failure doubles it, up to MaxBackoff (default 10
	// s). A stream that delivered anything resets it. Each delay is
	// jittered down by up to half, so that many clients do not reconnect in
	// step after a gateway restart.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Called before each retry with the error that broke the stream and the
	// delay before the next attempt; for logging. Optional.
	OnRetry func(err error, delay time.Duration)
	// Called for each heartbeat (a response without events, sent when the
	// stream is idle). Optional.
	OnHeartbeat func(hb *webhooksv1.Heartbeat)
	// Passed to every Subscribe call, e.g. grpc.WaitForReady(true).
	CallOptions []grpc.CallOption
	// The subscriber token, sent as "authorization: Bearer <Token>" on every
	// Subscribe call when the gateway runs with --subscriber_tokens_file.
	// Use it over TLS: a token is as good as its secrecy. A revoked or
	// narrowed token ends Subscribe with UNAUTHENTICATED or
	// PERMISSION_DENIED. The handler's ctx does not carry it, so that calls
	// the handler makes to other services do not leak it.
	Token string

	// sleep waits for d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// Subscribe streams the events matching cfg.Request to handle until ctx ends
// (it then returns ctx's error), handle returns an error (returned as is), or
// the gateway answers with an error that retrying cannot fix (returned as the
// gRPC status error the gateway sent, details included):
//   - OUT_OF_RANGE: the next event to deliver is no longer retained; resuming
//     would leave a gap, which only the caller can decide to accept.
//     ResumeInfoFromError gives the gateway's ResumeInfo: subscribing again
//     with after_sequence = OldestAvailableSequence-1 (or from_oldest)
//     accepts the gap.
//   - INVALID_ARGUMENT: a bad filter, or a resume point beyond the gateway's
//     newest event (e.g. a gateway with --store=memory that restarted).
//   - UNIMPLEMENTED, UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND,
//     FAILED_PRECONDITION.
//
// Every other break (UNAVAILABLE while the gateway restarts or is
// unreachable, RESOURCE_EXHAUSTED when this subscriber fell behind, a stream
// that ended, ...) is retried with backoff, after the last delivered event,
// or before the first one after the ResumeInfo's last_sent_sequence when the
// error carries one (see Config.Request). Events at or below the last
// delivered sequence are never handed over twice.
func Subscribe(ctx context.Context, client webhooksv1.EventStreamServiceClient, cfg Config, handle Handler) error {
	cfg.setDefaults()
	s := subscription{cfg: cfg, client: client, handle: handle}
	return s.run(ctx)
}

// DefaultMaxEventsPerResponse is how many events one response may carry
// unless the request says otherwise; the gateway takes 0 to mean the same
// (and allows at most 1000). Batching makes a busy stream far cheaper per
// event for the gateway and the client, and an idle one is as prompt: the
// gateway never holds an event back to fill a response.
const DefaultMaxEventsPerResponse = 100

// ResumeInfoFromError returns the ResumeInfo detail of a gRPC status error
// (the gateway attaches one when a stream that could resume ends with
// OUT_OF_RANGE, RESOURCE_EXHAUSTED or UNAVAILABLE), and whether there was
// one. It works on the errors Subscribe returns, and on errors wrapping them.
func ResumeInfoFromError(err error) (*webhooksv1.ResumeInfo, bool) {
	if err == nil {
		return nil, false
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil, false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*webhooksv1.ResumeInfo); ok {
			return info, true
		}
	}
	return nil, false
}

func (c *Config) setDefaults() {
	if c.Request == nil {
		c.Request = &webhooksv1.SubscribeRequest{}
	}
	if c.Request.GetMaxEventsPerResponse() == 0 {
		c.Request = proto.Clone(c.Request).(*webhooksv1.SubscribeRequest)
		c.Request.MaxEventsPerResponse = DefaultMaxEventsPerResponse
	}
	if c.InitialBackoff <= 0 {
		c.InitialBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.MaxBackoff < c.InitialBackoff {
		c.MaxBackoff = c.InitialBackoff
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
}

type subscription struct {
	cfg    Config
	client webhooksv1.EventStreamServiceClient
	handle Handler
	// The sequence of the last event handed to handle; valid when seen.
	last uint64
	seen bool
	// Before the first delivered event: the last_sent_sequence of the latest
	// break's ResumeInfo; valid when resumable.
	resumeAfter uint64
	resumable   bool
}

// errHandler wraps a handler's error so that run can tell it from a stream's.
type errHandler struct{ err error }

func (e errHandler) Error() string { return e.err.Error() }

func (s *subscription) run(ctx context.Context) error {
	backoff := s.cfg.InitialBackoff
	for {
		progressed, err := s.once(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var he errHandler
		if errors.As(err, &he) {
			return he.err
		}
		if permanent(err) {
			return err
		}
		if info, ok := ResumeInfoFromError(err); ok && !s.seen {
			s.resumeAfter, s.resumable = info.GetLastSentSequence(), true
		}
		if progressed {
			backoff = s.cfg.InitialBackoff
		}
		if err := pause(ctx, err, &backoff, s.cfg.MaxBackoff, s.cfg.OnRetry, s.cfg.sleep); err != nil {
			return err
		}
	}
}

// pause waits out one jittered backoff before a reconnect (jitter down by up
// to half: spreads reconnects, keeps the floor), then doubles *backoff up to
// maxBackoff. It returns ctx's error if ctx ends first.
func pause(ctx context.Context, cause error, backoff *time.Duration, maxBackoff time.Duration,
	onRetry func(error, time.Duration), sleep func(context.Context, time.Duration) error) error {
	delay := *backoff/2 + rand.N(*backoff/2+1)
	if onRetry != nil {
		onRetry(cause, delay)
	}
	if err := sleep(ctx, delay); err != nil {
		return err
	}
	*backoff = min(*backoff*2, maxBackoff)
	return nil
}

// once runs one Subscribe call until it breaks. progressed reports whether
// the stream delivered anything (the gateway was reachable and serving).
func (s *subscription) once(ctx context.Context) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The token goes on the call's ctx only: the handler gets ctx, and a
	// call it makes to another service with it must not carry the token.
	callCtx := ctx
	if s.cfg.Token != "" {
		callCtx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.cfg.Token)
	}
	stream, err := s.client.Subscribe(callCtx, s.request(), s.cfg.CallOptions...)
	if err != nil {
		return false, err
	}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			// The server ended a stream that never ends by itself: treat it
			// as a break and resume.
			return progressed, status.Error(codes.Unavailable, "eventstream: the gateway ended the stream")
		}
		if err != nil {
			return progressed, err
		}
		progressed = true
		for _, ev := range resp.GetEvents() {
			if err := s.deliver(ctx, ev); err != nil {
				return progressed, err
			}
		}
		if hb := resp.GetHeartbeat(); hb != nil && s.cfg.OnHeartbeat != nil {
			s.cfg.OnHeartbeat(hb)
		}
	}
}

// deliver hands ev to the handler unless it was delivered before a break.
func (s *subscription) deliver(ctx context.Context, ev *webhooksv1.Event) error {
	if s.seen && ev.GetSequence() <= s.last {
		return nil
	}
	if err := s.handle(ctx, ev); err != nil {
		return errHandler{err}
	}
	s.last, s.seen = ev.GetSequence(), true
	return nil
}

// request is the configured request, resuming after the last delivered event
// once there is one, and before that after the ResumeInfo of a break.
func (s *subscription) request() *webhooksv1.SubscribeRequest {
	var after uint64
	switch {
	case s.seen:
		after = s.last
	case s.resumable:
		after = s.resumeAfter
	default:
		return s.cfg.Request
	}
	req := proto.Clone(s.cfg.Request).(*webhooksv1.SubscribeRequest)
	req.StartPosition = &webhooksv1.SubscribeRequest_AfterSequence{AfterSequence: after}
	return req
}

// permanent reports whether retrying err as it is cannot succeed.
func permanent(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.OutOfRange, codes.InvalidArgument, codes.Unimplemented,
		codes.Unauthenticated, codes.PermissionDenied, codes.NotFound,
		codes.FailedPrecondition:
		return true
	}
	return false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Package eventstream subscribes to the webhook gateway's EventStreamService
// and keeps the subscription going across disconnects and gateway restarts:
// after a break it subscribes again from the last event it delivered, with
// exponential backoff, so the handler sees every matching event once and in
// sequence order.
//
//	conn, _ := grpc.NewClient("localhost:50051",
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//	req := &webhooksv1.SubscribeRequest{
//		EventTypes: []webhooksv1.EventType{webhooksv1.EventType_EVENT_TYPE_MESSAGE_RECEIVED},
//	}
//	err := eventstream.Subscribe(ctx, webhooksv1.NewEventStreamServiceClient(conn),
//		eventstream.Config{Request: req},
//		func(ctx context.Context, ev *webhooksv1.Event) error {
//			fmt.Println(ev.GetSequence(), ev.GetType())
//			return nil
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
	// instead. A subscription that starts from now and breaks before its
	// first event starts from now again (events accepted in between are not
	// sent): set AfterSequence to make even that gap impossible. When its
	// MaxEventsPerResponse is 0, DefaultMaxEventsPerResponse is asked for:
	// the handler still gets one event at a time.
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
	// Called for each heartbeat (idle stream). Optional.
	OnHeartbeat func(hb *webhooksv1.Heartbeat)
	// Passed to every Subscribe call, e.g. grpc.WaitForReady(true).
	CallOptions []grpc.CallOption

	// sleep waits for d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// Subscribe streams the events matching cfg.Request to handle until ctx ends
// (it then returns ctx's error), handle returns an error (returned as is), or
// the gateway answers with an error that retrying cannot fix (returned as a
// gRPC status error):
//   - OUT_OF_RANGE: the next event to deliver is no longer retained; resuming
//     would leave a gap, which only the caller can decide to accept.
//   - INVALID_ARGUMENT: a bad filter, or a resume point beyond the gateway's
//     newest event (e.g. a gateway with --store=memory that restarted).
//   - UNIMPLEMENTED, UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND,
//     FAILED_PRECONDITION.
//
// Every other break (UNAVAILABLE while the gateway restarts or is
// unreachable, RESOURCE_EXHAUSTED when this subscriber fell behind, a stream
// that ended, ...) is retried with backoff after the last delivered event.
// Events at or below the last delivered sequence are never handed over twice.
func Subscribe(ctx context.Context, client webhooksv1.EventStreamServiceClient, cfg Config, handle Handler) error {
	cfg.setDefaults()
	s := subscription{cfg: cfg, client: client, handle: handle}
	return s.run(ctx)
}

// DefaultMaxEventsPerResponse is how many events one response may carry
// unless the request says otherwise: a busy stream then costs the gateway
// and the client far less per event, and an idle one is as prompt.
const DefaultMaxEventsPerResponse = 100

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
		if progressed {
			backoff = s.cfg.InitialBackoff
		}
		// Jitter down by up to half: spreads reconnects, keeps the floor.
		delay := backoff/2 + rand.N(backoff/2+1)
		if s.cfg.OnRetry != nil {
			s.cfg.OnRetry(err, delay)
		}
		if err := s.cfg.sleep(ctx, delay); err != nil {
			return err
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
	}
}

// once runs one Subscribe call until it breaks. progressed reports whether
// the stream delivered anything (the gateway was reachable and serving).
func (s *subscription) once(ctx context.Context) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := s.client.Subscribe(ctx, s.request(), s.cfg.CallOptions...)
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
		switch kind := resp.GetKind().(type) {
		case *webhooksv1.SubscribeResponse_Event:
			if err := s.deliver(ctx, kind.Event); err != nil {
				return progressed, err
			}
		case *webhooksv1.SubscribeResponse_Events:
			for _, ev := range kind.Events.GetEvents() {
				if err := s.deliver(ctx, ev); err != nil {
					return progressed, err
				}
			}
		case *webhooksv1.SubscribeResponse_Heartbeat:
			if s.cfg.OnHeartbeat != nil {
				s.cfg.OnHeartbeat(kind.Heartbeat)
			}
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
// once there is one.
func (s *subscription) request() *webhooksv1.SubscribeRequest {
	if !s.seen {
		return s.cfg.Request
	}
	req := proto.Clone(s.cfg.Request).(*webhooksv1.SubscribeRequest)
	req.StartPosition = &webhooksv1.SubscribeRequest_AfterSequence{AfterSequence: s.last}
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

package eventstream

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	webhooksv1 "github.com/convocore/webhook-gateway/clients/go/convocore/webhooks/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ConsumeHandler handles one event delivered to this member of a consumer
// group. Returning nil acknowledges the event; returning an error nacks it
// with err.Error() as the reason (its first MaxNackErrorBytes bytes), so that
// the gateway redelivers it at once, or dead-letters it with that reason
// after the group's max_delivery_attempts.
//
// ctx ends when Consume returns and when the stream the event came on
// breaks: the outcome could then no longer be sent, and the gateway delivers
// the event again (to this member after it reconnects, or to another), so a
// long handler may as well stop. Delivery is at least once: an event may
// come again after a break, an expired ack deadline or a gateway crash, and
// ev.GetDeliveryAttempt() counts the deliveries.
type ConsumeHandler func(ctx context.Context, ev *webhooksv1.ConsumedEvent) error

// ConsumeConfig says which consumer group to join and how to retry.
type ConsumeConfig struct {
	// Request is the first request of every Consume call: consumer_group
	// (required), and the settings the gateway uses when it creates the group
	// on first use (filter, start position, ack_deadline,
	// max_delivery_attempts; for an existing group the filter must be empty
	// or equal to its own), and this member's max_in_flight. It is sent as
	// it is on every reconnection: the group, not the client, keeps the
	// position, so there is nothing to resume from. It must carry no acks.
	Request *webhooksv1.ConsumeRequest
	// How many events are handled at once; default 1: one at a time, in
	// delivery order. More lets slow handlers overlap, out of order. It is
	// capped at the request's max_in_flight (0 means DefaultMaxInFlight),
	// the most the gateway hands this member before it acks.
	//
	// Events wait for a handler on this side, and their ack deadline runs
	// while they wait: with handlers slower than ack_deadline divided by
	// max_in_flight, raise Concurrency or lower max_in_flight, or events are
	// redelivered to other members while still queued here.
	Concurrency int
	// Delay before the first retry after a break; default 100 ms. Each
	// further consecutive failure doubles it, up to MaxBackoff (default 10
	// s). A stream that received anything resets it. Each delay is jittered
	// down by up to half, so that a group's members do not reconnect in step
	// after a gateway restart.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Called before each retry with the error that broke the stream and the
	// delay before the next attempt; for logging. Optional.
	OnRetry func(err error, delay time.Duration)
	// Called for each heartbeat of an idle stream. Optional.
	OnHeartbeat func(hb *webhooksv1.Heartbeat)
	// Called with the sequences whose acks the gateway has made durable:
	// those events are not delivered to the group again, whatever happens
	// to the gateway. An ack not yet confirmed when the stream breaks may
	// not have been recorded: its event may come again. Optional.
	OnAcknowledged func(seqs []uint64)
	// Passed to every Consume call, e.g. grpc.WaitForReady(true).
	CallOptions []grpc.CallOption
	// The subscriber token, sent as "authorization: Bearer <Token>" on every
	// Consume call when the gateway runs with --subscriber_tokens_file. Use
	// it over TLS. The handler's ctx does not carry it, so that calls the
	// handler makes to other services do not leak it.
	Token string

	// sleep waits for d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// DefaultMaxInFlight is how many unacknowledged events the gateway hands one
// member when ConsumeRequest.max_in_flight is 0 (at most 1000 may be asked
// for).
const DefaultMaxInFlight = 100

// MaxNackErrorBytes is the longest nack reason the gateway keeps; a
// handler's error text is cut to it (at a UTF-8 boundary).
const MaxNackErrorBytes = 1024

// Consume joins the consumer group cfg.Request names and hands each event the
// gateway delivers to this member to handle, then acks or nacks it as handle
// returns; outcomes ready at the same time go out in one request. It runs
// until ctx ends (it then returns ctx's error; outcomes not yet sent are
// lost, and those events are delivered again), or the gateway answers with
// an error that retrying cannot fix, returned as the gRPC status error the
// gateway sent:
//   - INVALID_ARGUMENT: a bad group name or setting.
//   - FAILED_PRECONDITION: the group exists with another filter.
//   - NOT_FOUND: the group was deleted.
//   - OUT_OF_RANGE: the group's position fell below the gateway's retention;
//     ResumeInfoFromError gives the gap, and SeekConsumerGroup moves the
//     group past it.
//   - UNIMPLEMENTED, UNAUTHENTICATED, PERMISSION_DENIED.
//
// Every other break (UNAVAILABLE while the gateway restarts or is
// unreachable, RESOURCE_EXHAUSTED when the group has too many members, a
// stream that ended, ...) is retried with backoff, joining again with the
// same first request. Handlers still running then are cancelled and waited
// for, and their outcomes dropped: the gateway redelivers the events a
// disconnected member held. Consume never returns while a handler runs.
//
// Flow control is the gateway's: it never has more than max_in_flight
// unacknowledged events out to a member, and Consume acks as it handles, so
// it holds no more than that.
func Consume(ctx context.Context, client webhooksv1.EventStreamServiceClient, cfg ConsumeConfig, handle ConsumeHandler) error {
	if cfg.Request.GetConsumerGroup() == "" {
		return errors.New("eventstream: ConsumeConfig.Request names no consumer_group")
	}
	cfg.setDefaults()
	c := consumer{cfg: cfg, client: client, handle: handle}
	return c.run(ctx)
}

func (c *ConsumeConfig) setDefaults() {
	inFlight := int(c.Request.GetMaxInFlight())
	if inFlight == 0 {
		inFlight = DefaultMaxInFlight
	}
	c.Concurrency = min(max(c.Concurrency, 1), inFlight)
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

type consumer struct {
	cfg    ConsumeConfig
	client webhooksv1.EventStreamServiceClient
	handle ConsumeHandler
}

// outcome is what handling one event came to: an ack when err is nil.
type outcome struct {
	seq uint64
	err error
}

func (c *consumer) run(ctx context.Context) error {
	backoff := c.cfg.InitialBackoff
	for {
		progressed, err := c.once(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if permanent(err) {
			return err
		}
		if progressed {
			backoff = c.cfg.InitialBackoff
		}
		if err := pause(ctx, err, &backoff, c.cfg.MaxBackoff, c.cfg.OnRetry, c.cfg.sleep); err != nil {
			return err
		}
	}
}

// once runs one Consume call until it breaks. progressed reports whether the
// stream received anything (the gateway was reachable and serving).
//
// Three kinds of goroutine share it: one receives and queues the events, up
// to Concurrency handle them, and this one sends their outcomes, as gRPC
// allows one sender at a time. Every one has ended when once returns.
func (c *consumer) once(ctx context.Context) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	callCtx := ctx
	if c.cfg.Token != "" {
		callCtx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.cfg.Token)
	}
	stream, err := c.client.Consume(callCtx, c.cfg.CallOptions...)
	if err != nil {
		return false, err
	}

	// Sized for what the gateway may have out to this member, so that
	// neither the receiver nor a handler waits on a conforming gateway.
	inFlight := int(c.cfg.Request.GetMaxInFlight())
	if inFlight == 0 {
		inFlight = DefaultMaxInFlight
	}
	events := make(chan *webhooksv1.ConsumedEvent, inFlight)
	outcomes := make(chan outcome, inFlight)
	ended := make(chan error, 1)
	var received atomic.Bool

	if err := stream.Send(c.cfg.Request); err != nil && err != io.EOF {
		return false, err
	}
	// On io.EOF the stream already ended; the receiver gets its status.
	wg.Add(1)
	go func() {
		defer wg.Done()
		ended <- c.receive(ctx, stream, events, &received)
	}()
	for range c.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work(ctx, events, outcomes)
		}()
	}
	for {
		select {
		case err := <-ended:
			return received.Load(), err
		case o := <-outcomes:
			if err := stream.Send(batchOutcomes(o, outcomes)); err != nil {
				if err == io.EOF {
					err = <-ended
				}
				return received.Load(), err
			}
		}
	}
}

// receive queues the stream's events for the handlers until the stream
// breaks, and returns why it broke.
func (c *consumer) receive(ctx context.Context, stream webhooksv1.EventStreamService_ConsumeClient,
	events chan<- *webhooksv1.ConsumedEvent, received *atomic.Bool) error {
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			// The server ended a stream that never ends by itself: treat it
			// as a break and join again.
			return status.Error(codes.Unavailable, "eventstream: the gateway ended the Consume stream")
		}
		if err != nil {
			return err
		}
		received.Store(true)
		if seqs := resp.GetAcknowledgedSequences(); len(seqs) > 0 && c.cfg.OnAcknowledged != nil {
			c.cfg.OnAcknowledged(seqs)
		}
		for _, ev := range resp.GetEvents() {
			select {
			case events <- ev:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if hb := resp.GetHeartbeat(); hb != nil && c.cfg.OnHeartbeat != nil {
			c.cfg.OnHeartbeat(hb)
		}
	}
}

// work handles queued events until the stream ends.
func (c *consumer) work(ctx context.Context, events <-chan *webhooksv1.ConsumedEvent, outcomes chan<- outcome) {
	for {
		var ev *webhooksv1.ConsumedEvent
		select {
		case ev = <-events:
		case <-ctx.Done():
			return
		}
		err := c.handle(ctx, ev)
		if ctx.Err() != nil {
			return // Nowhere to send it: the event comes again.
		}
		select {
		case outcomes <- outcome{seq: ev.GetEvent().GetSequence(), err: err}:
		case <-ctx.Done():
			return
		}
	}
}

// batchOutcomes is one request settling first and every other outcome
// already waiting in more.
func batchOutcomes(first outcome, more <-chan outcome) *webhooksv1.ConsumeRequest {
	req := &webhooksv1.ConsumeRequest{}
	add := func(o outcome) {
		if o.err == nil {
			req.AckSequences = append(req.AckSequences, o.seq)
		} else {
			req.Nacks = append(req.Nacks, &webhooksv1.Nack{Sequence: o.seq, Error: nackReason(o.err)})
		}
	}
	add(first)
	for {
		select {
		case o := <-more:
			add(o)
		default:
			return req
		}
	}
}

// nackReason is err's text as the gateway keeps it: at most
// MaxNackErrorBytes, and valid UTF-8, without which the request would not
// marshal (a proto3 string) and the stream would break on every retry.
func nackReason(err error) string {
	s := strings.ToValidUTF8(err.Error(), "\uFFFD")
	if len(s) <= MaxNackErrorBytes {
		return s
	}
	n := MaxNackErrorBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

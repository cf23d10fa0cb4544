package eventstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	webhooksv1 "github.com/convocore/webhook-gateway/clients/go/convocore/webhooks/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// session scripts one Subscribe call of the fake gateway.
type session func(req *webhooksv1.SubscribeRequest, stream webhooksv1.EventStreamService_SubscribeServer) error

// fakeGateway serves the scripted sessions in order, one per Subscribe call,
// and records each request. Past the script it answers UNIMPLEMENTED, which
// ends Subscribe.
type fakeGateway struct {
	webhooksv1.UnimplementedEventStreamServiceServer
	mu       sync.Mutex
	sessions []session
	requests []*webhooksv1.SubscribeRequest
}

func (f *fakeGateway) Subscribe(req *webhooksv1.SubscribeRequest, stream webhooksv1.EventStreamService_SubscribeServer) error {
	f.mu.Lock()
	i := len(f.requests)
	f.requests = append(f.requests, proto.Clone(req).(*webhooksv1.SubscribeRequest))
	f.mu.Unlock()
	if i >= len(f.sessions) {
		return status.Error(codes.Unimplemented, "fake gateway: script exhausted")
	}
	return f.sessions[i](req, stream)
}

func (f *fakeGateway) recorded() []*webhooksv1.SubscribeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*webhooksv1.SubscribeRequest(nil), f.requests...)
}

// start serves f on a free loopback port for the test's duration and returns
// a client of it.
func start(t *testing.T, f *fakeGateway) webhooksv1.EventStreamServiceClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	webhooksv1.RegisterEventStreamServiceServer(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return webhooksv1.NewEventStreamServiceClient(conn)
}

func newEvent(seq uint64) *webhooksv1.Event {
	return &webhooksv1.Event{
		Sequence:  seq,
		EventType: webhooksv1.EventType_EVENT_TYPE_MESSAGE_RECEIVED,
		TypeRaw:   "message_received",
	}
}

// event is a response carrying the one event seq.
func event(seq uint64) *webhooksv1.SubscribeResponse {
	return batch(seq)
}

// batch is one response carrying the events seqs, in that order.
func batch(seqs ...uint64) *webhooksv1.SubscribeResponse {
	resp := &webhooksv1.SubscribeResponse{}
	for _, seq := range seqs {
		resp.Events = append(resp.Events, newEvent(seq))
	}
	return resp
}

func heartbeat(last uint64) *webhooksv1.SubscribeResponse {
	return &webhooksv1.SubscribeResponse{Heartbeat: &webhooksv1.Heartbeat{
		SendTime:     timestamppb.New(time.Unix(1700000000, 0)),
		LastSequence: last,
	}}
}

// withResumeInfo is a status error carrying info as its detail, the way the
// gateway ends a stream that could resume.
func withResumeInfo(code codes.Code, msg string, info *webhooksv1.ResumeInfo) error {
	st, err := status.New(code, msg).WithDetails(info)
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// sends scripts a session that sends msgs and then ends with err.
func sends(err error, msgs ...*webhooksv1.SubscribeResponse) session {
	return func(_ *webhooksv1.SubscribeRequest, stream webhooksv1.EventStreamService_SubscribeServer) error {
		for _, m := range msgs {
			if e := stream.Send(m); e != nil {
				return e
			}
		}
		return err
	}
}

var unavailable = status.Error(codes.Unavailable, "gateway restarting")

// recorder collects the delivered sequences and the retry delays.
type recorder struct {
	seqs   []uint64
	delays []time.Duration
}

func (r *recorder) config(req *webhooksv1.SubscribeRequest) Config {
	return Config{
		Request:        req,
		InitialBackoff: 100 * time.Millisecond,
		MaxBackoff:     300 * time.Millisecond,
		sleep: func(ctx context.Context, d time.Duration) error {
			r.delays = append(r.delays, d)
			return ctx.Err()
		},
	}
}

func (r *recorder) handle(_ context.Context, ev *webhooksv1.Event) error {
	r.seqs = append(r.seqs, ev.GetSequence())
	return nil
}

func filtered(start func(*webhooksv1.SubscribeRequest)) *webhooksv1.SubscribeRequest {
	req := &webhooksv1.SubscribeRequest{
		EventTypes: []webhooksv1.EventType{webhooksv1.EventType_EVENT_TYPE_MESSAGE_RECEIVED},
		AgentIds:   []string{"agent_123456"},
		Channels:   []webhooksv1.Channel{webhooksv1.Channel_CHANNEL_WHATSAPP},
	}
	if start != nil {
		start(req)
	}
	return req
}

func fromOldest(r *webhooksv1.SubscribeRequest) {
	r.StartPosition = &webhooksv1.SubscribeRequest_FromOldest{FromOldest: true}
}

func after(seq uint64) func(*webhooksv1.SubscribeRequest) {
	return func(r *webhooksv1.SubscribeRequest) {
		r.StartPosition = &webhooksv1.SubscribeRequest_AfterSequence{AfterSequence: seq}
	}
}

func checkSeqs(t *testing.T, got []uint64, want ...uint64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("delivered sequences %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("delivered sequences %v, want %v", got, want)
		}
	}
}

// checkRequests compares the requests the gateway got with want, as Subscribe
// sends them: with DefaultMaxEventsPerResponse where want leaves it 0.
func checkRequests(t *testing.T, got []*webhooksv1.SubscribeRequest, want ...*webhooksv1.SubscribeRequest) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("gateway got %d Subscribe calls, want %d: %v", len(got), len(want), got)
	}
	for i := range got {
		w := proto.Clone(want[i]).(*webhooksv1.SubscribeRequest)
		if w.MaxEventsPerResponse == 0 {
			w.MaxEventsPerResponse = DefaultMaxEventsPerResponse
		}
		if !proto.Equal(got[i], w) {
			t.Errorf("Subscribe call %d: request %v, want %v", i, got[i], want[i])
		}
	}
}

func TestResumesAfterLastDeliveredEventWithoutRepeats(t *testing.T) {
	f := &fakeGateway{sessions: []session{
		sends(unavailable, event(1), event(2), heartbeat(7)),
		// A gateway that re-sends what the client already has: dropped.
		sends(status.Error(codes.ResourceExhausted, "fell behind; last sent 3"), event(2), event(3)),
		sends(nil, event(4)), // A stream that just ends is a break too.
		sends(status.Error(codes.OutOfRange, "oldest retained is 9"), event(5)),
	}}
	var r recorder
	var heartbeats []uint64
	cfg := r.config(filtered(fromOldest))
	cfg.OnHeartbeat = func(hb *webhooksv1.Heartbeat) { heartbeats = append(heartbeats, hb.GetLastSequence()) }
	err := Subscribe(context.Background(), start(t, f), cfg, r.handle)

	if status.Code(err) != codes.OutOfRange {
		t.Fatalf("Subscribe returned %v, want the OUT_OF_RANGE it cannot resume from", err)
	}
	checkSeqs(t, r.seqs, 1, 2, 3, 4, 5)
	checkRequests(t, f.recorded(), filtered(fromOldest), filtered(after(2)), filtered(after(3)), filtered(after(4)))
	checkSeqs(t, heartbeats, 7)
}

func TestBatchesAreHandedOverOneEventAtATimeWithoutRepeats(t *testing.T) {
	f := &fakeGateway{sessions: []session{
		sends(unavailable, batch(1, 2, 3), event(4)),
		// Overlaps what was delivered: only 5 and 6 are new.
		sends(status.Error(codes.OutOfRange, "gone"), batch(3, 4, 5), batch(6)),
	}}
	var r recorder
	err := Subscribe(context.Background(), start(t, f), r.config(filtered(fromOldest)), r.handle)

	if status.Code(err) != codes.OutOfRange {
		t.Fatalf("Subscribe returned %v, want the script's OUT_OF_RANGE", err)
	}
	checkSeqs(t, r.seqs, 1, 2, 3, 4, 5, 6)
	checkRequests(t, f.recorded(), filtered(fromOldest), filtered(after(4)))
}

func TestAnExplicitMaxEventsPerResponseIsKept(t *testing.T) {
	f := &fakeGateway{sessions: []session{sends(status.Error(codes.OutOfRange, "gone"), event(1))}}
	req := filtered(nil)
	req.MaxEventsPerResponse = 1
	var r recorder
	Subscribe(context.Background(), start(t, f), r.config(req), r.handle)

	checkRequests(t, f.recorded(), req)
	if req.MaxEventsPerResponse != 1 {
		t.Errorf("Subscribe changed the caller's request")
	}
}

func TestKeepsTheRequestedStartUntilTheFirstEvent(t *testing.T) {
	f := &fakeGateway{sessions: []session{
		sends(unavailable),
		sends(unavailable, heartbeat(5)),
		sends(unavailable, event(6)),
	}}
	var r recorder
	err := Subscribe(context.Background(), start(t, f), r.config(filtered(after(5))), r.handle)

	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("Subscribe returned %v, want the script's end (UNIMPLEMENTED)", err)
	}
	checkSeqs(t, r.seqs, 6)
	checkRequests(t, f.recorded(), filtered(after(5)), filtered(after(5)), filtered(after(5)), filtered(after(6)))
}

func TestBackoffGrowsToTheCapAndResetsAfterProgress(t *testing.T) {
	f := &fakeGateway{sessions: []session{
		sends(unavailable), sends(unavailable), sends(unavailable), sends(unavailable),
		sends(unavailable, event(1)),
		sends(unavailable),
	}}
	var r recorder
	Subscribe(context.Background(), start(t, f), r.config(nil), r.handle)

	// Nominal delays 100, 200, 300 (capped), 300, then 100 after the stream
	// that delivered; each jittered into [nominal/2, nominal].
	nominal := []time.Duration{100, 200, 300, 300, 100, 200}
	if len(r.delays) != len(nominal) {
		t.Fatalf("retry delays %v, want %d of them", r.delays, len(nominal))
	}
	for i, n := range nominal {
		n *= time.Millisecond
		if d := r.delays[i]; d < n/2 || d > n {
			t.Errorf("retry %d waited %v, want within [%v, %v]", i, d, n/2, n)
		}
	}
}

func TestPermanentErrorsAreReturnedWithoutRetry(t *testing.T) {
	for _, code := range []codes.Code{
		codes.OutOfRange, codes.InvalidArgument, codes.Unimplemented, codes.Unauthenticated,
		codes.PermissionDenied, codes.NotFound, codes.FailedPrecondition,
	} {
		t.Run(code.String(), func(t *testing.T) {
			f := &fakeGateway{sessions: []session{sends(status.Error(code, "no"))}}
			var r recorder
			err := Subscribe(context.Background(), start(t, f), r.config(nil), r.handle)
			if status.Code(err) != code {
				t.Fatalf("Subscribe returned %v, want code %v", err, code)
			}
			if len(f.recorded()) != 1 || len(r.delays) != 0 {
				t.Fatalf("retried a permanent error: %d calls, delays %v", len(f.recorded()), r.delays)
			}
		})
	}
}

func TestHandlerErrorEndsSubscribeAndIsNotCountedAsSeen(t *testing.T) {
	f := &fakeGateway{sessions: []session{sends(unavailable, event(1), event(2), event(3))}}
	stop := errors.New("downstream is full")
	var got []uint64
	err := Subscribe(context.Background(), start(t, f), Config{}, func(_ context.Context, ev *webhooksv1.Event) error {
		got = append(got, ev.GetSequence())
		if ev.GetSequence() == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Subscribe returned %v, want the handler's error", err)
	}
	checkSeqs(t, got, 1, 2)
	if n := len(f.recorded()); n != 1 {
		t.Fatalf("resubscribed after a handler error: %d calls", n)
	}
}

func TestCancellingTheContextEndsSubscribe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	blockUntilCancelled := func(_ *webhooksv1.SubscribeRequest, stream webhooksv1.EventStreamService_SubscribeServer) error {
		if err := stream.Send(event(1)); err != nil {
			return err
		}
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	f := &fakeGateway{sessions: []session{blockUntilCancelled}}
	err := Subscribe(ctx, start(t, f), Config{}, func(context.Context, *webhooksv1.Event) error {
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe returned %v, want context.Canceled", err)
	}
}

func TestCancellingTheContextEndsTheBackoffWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeGateway{sessions: []session{sends(unavailable)}}
	cfg := Config{InitialBackoff: time.Hour, OnRetry: func(error, time.Duration) { cancel() }}
	err := Subscribe(ctx, start(t, f), cfg, func(context.Context, *webhooksv1.Event) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe returned %v, want context.Canceled", err)
	}
}

func TestEventsOfOneResponseAreHandedOverOneAtATimeInOrder(t *testing.T) {
	f := &fakeGateway{sessions: []session{
		sends(status.Error(codes.OutOfRange, "gone"), batch(1, 2, 3, 5, 8), heartbeat(8), batch(13, 21)),
	}}
	var r recorder
	var perCall []int
	handle := func(ctx context.Context, ev *webhooksv1.Event) error {
		perCall = append(perCall, len(r.seqs)) // How many were handed over before.
		return r.handle(ctx, ev)
	}
	err := Subscribe(context.Background(), start(t, f), r.config(filtered(fromOldest)), handle)

	if status.Code(err) != codes.OutOfRange {
		t.Fatalf("Subscribe returned %v, want the script's OUT_OF_RANGE", err)
	}
	checkSeqs(t, r.seqs, 1, 2, 3, 5, 8, 13, 21)
	for i, n := range perCall {
		if n != i {
			t.Fatalf("handler call %d came after %d events, want one event per call", i, n)
		}
	}
}

func TestHeartbeatsGoToOnHeartbeatAndDeliverNothing(t *testing.T) {
	f := &fakeGateway{sessions: []session{
		sends(status.Error(codes.OutOfRange, "gone"), heartbeat(0), heartbeat(4), event(5), heartbeat(9)),
	}}
	var r recorder
	var heartbeats []*webhooksv1.Heartbeat
	cfg := r.config(filtered(after(4)))
	cfg.OnHeartbeat = func(hb *webhooksv1.Heartbeat) { heartbeats = append(heartbeats, hb) }
	Subscribe(context.Background(), start(t, f), cfg, r.handle)

	checkSeqs(t, r.seqs, 5)
	if len(heartbeats) != 3 {
		t.Fatalf("OnHeartbeat got %d heartbeats, want 3", len(heartbeats))
	}
	for i, want := range []uint64{0, 4, 9} {
		hb := heartbeats[i]
		if hb.GetLastSequence() != want || hb.GetSendTime().AsTime() != time.Unix(1700000000, 0).UTC() {
			t.Errorf("heartbeat %d is %v, want last_sequence %d and the send_time sent", i, hb, want)
		}
	}
}

func TestBeforeTheFirstEventResumesAfterTheResumeInfo(t *testing.T) {
	f := &fakeGateway{sessions: []session{
		// A stream from now that ends before any event: the gateway says
		// where it had started.
		sends(withResumeInfo(codes.Unavailable, "shutting down",
			&webhooksv1.ResumeInfo{LastSentSequence: 41, OldestAvailableSequence: 1, LastSequence: 41}), heartbeat(41)),
		// Unreachable: no ResumeInfo, so the position stays.
		sends(unavailable),
		sends(withResumeInfo(codes.ResourceExhausted, "fell behind",
			&webhooksv1.ResumeInfo{LastSentSequence: 44, OldestAvailableSequence: 1, LastSequence: 90})),
		sends(unavailable, event(45)),
	}}
	var r recorder
	err := Subscribe(context.Background(), start(t, f), r.config(filtered(nil)), r.handle)

	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("Subscribe returned %v, want the script's end (UNIMPLEMENTED)", err)
	}
	checkSeqs(t, r.seqs, 45)
	checkRequests(t, f.recorded(), filtered(nil), filtered(after(41)), filtered(after(41)), filtered(after(44)), filtered(after(45)))
}

func TestAfterAnEventResumesAfterItsOwnLastSequenceWhateverTheResumeInfoSays(t *testing.T) {
	f := &fakeGateway{sessions: []session{
		// The gateway claims to have sent up to 9, but only 3 arrived: 4..9
		// must be asked for again, not skipped.
		sends(withResumeInfo(codes.Unavailable, "shutting down",
			&webhooksv1.ResumeInfo{LastSentSequence: 9, OldestAvailableSequence: 1, LastSequence: 9}), event(2), event(3)),
		// A stream that sends nothing after events were delivered: still
		// after the last delivered one, not the ResumeInfo's 1.
		sends(withResumeInfo(codes.ResourceExhausted, "fell behind",
			&webhooksv1.ResumeInfo{LastSentSequence: 1, OldestAvailableSequence: 1, LastSequence: 9})),
		sends(unavailable, batch(4, 9)),
	}}
	var r recorder
	err := Subscribe(context.Background(), start(t, f), r.config(filtered(fromOldest)), r.handle)

	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("Subscribe returned %v, want the script's end (UNIMPLEMENTED)", err)
	}
	checkSeqs(t, r.seqs, 2, 3, 4, 9)
	checkRequests(t, f.recorded(), filtered(fromOldest), filtered(after(3)), filtered(after(3)), filtered(after(9)))
}

func TestOutOfRangeIsReturnedWithItsResumeInfo(t *testing.T) {
	want := &webhooksv1.ResumeInfo{LastSentSequence: 0, OldestAvailableSequence: 7, LastSequence: 12}
	f := &fakeGateway{sessions: []session{
		sends(withResumeInfo(codes.OutOfRange, "events after 0 are no longer retained", want)),
	}}
	var r recorder
	err := Subscribe(context.Background(), start(t, f), r.config(filtered(after(0))), r.handle)

	if status.Code(err) != codes.OutOfRange {
		t.Fatalf("Subscribe returned %v, want OUT_OF_RANGE", err)
	}
	if n := len(f.recorded()); n != 1 || len(r.delays) != 0 {
		t.Fatalf("retried OUT_OF_RANGE: %d calls, delays %v", n, r.delays)
	}
	for _, e := range []error{err, fmt.Errorf("subscribing: %w", err)} {
		got, ok := ResumeInfoFromError(e)
		if !ok || !proto.Equal(got, want) {
			t.Errorf("ResumeInfoFromError(%v) = %v, %v; want %v, true", e, got, ok, want)
		}
	}
}

func TestResumeInfoFromErrorWithoutOne(t *testing.T) {
	for _, err := range []error{
		nil,
		errors.New("not a status"),
		status.Error(codes.Unavailable, "no details"),
	} {
		if info, ok := ResumeInfoFromError(err); ok || info != nil {
			t.Errorf("ResumeInfoFromError(%v) = %v, %v; want nil, false", err, info, ok)
		}
	}
}

func TestTheTokenIsSentOnEverySubscribeCall(t *testing.T) {
	var mu sync.Mutex
	var got []string
	record := func(err error, msgs ...*webhooksv1.SubscribeResponse) session {
		send := sends(err, msgs...)
		return func(req *webhooksv1.SubscribeRequest, stream webhooksv1.EventStreamService_SubscribeServer) error {
			md, _ := metadata.FromIncomingContext(stream.Context())
			mu.Lock()
			got = append(got, strings.Join(md.Get("authorization"), ","))
			mu.Unlock()
			return send(req, stream)
		}
	}
	f := &fakeGateway{sessions: []session{
		record(unavailable, event(1)),
		record(status.Error(codes.Unauthenticated, "the token of subscriber \"crm\" was revoked")),
	}}
	var r recorder
	cfg := r.config(nil)
	cfg.Token = "s3cret"
	err := Subscribe(context.Background(), start(t, f), cfg, r.handle)
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("Subscribe returned %v, want UNAUTHENTICATED (a revoked token is not retried)", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != "Bearer s3cret" || got[1] != "Bearer s3cret" {
		t.Fatalf("authorization metadata per call = %q, want \"Bearer s3cret\" twice", got)
	}
}

func TestTheHandlersCtxDoesNotCarryTheToken(t *testing.T) {
	var sent []string
	f := &fakeGateway{sessions: []session{
		func(req *webhooksv1.SubscribeRequest, stream webhooksv1.EventStreamService_SubscribeServer) error {
			md, _ := metadata.FromIncomingContext(stream.Context())
			sent = md.Get("authorization")
			return sends(status.Error(codes.NotFound, "done"), event(1))(req, stream)
		},
	}}
	var r recorder
	cfg := r.config(nil)
	cfg.Token = "s3cret"
	handled := 0
	var leaked []string
	err := Subscribe(context.Background(), start(t, f), cfg, func(ctx context.Context, ev *webhooksv1.Event) error {
		handled++
		md, _ := metadata.FromOutgoingContext(ctx)
		leaked = append(leaked, md.Get("authorization")...)
		return nil
	})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Subscribe returned %v, want the script's NOT_FOUND", err)
	}
	if handled != 1 {
		t.Fatalf("the handler ran %d times, want once", handled)
	}
	if len(sent) != 1 || sent[0] != "Bearer s3cret" {
		t.Fatalf("the Subscribe call carried authorization %q, want \"Bearer s3cret\"", sent)
	}
	if len(leaked) != 0 {
		t.Fatalf("the handler's ctx would send authorization %q to whatever it calls", leaked)
	}
}

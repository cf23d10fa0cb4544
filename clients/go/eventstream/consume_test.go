package eventstream

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	webhooksv1 "github.com/convocore/webhook-gateway/clients/go/convocore/webhooks/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// member is the fake gateway's side of one Consume call: the stream, and
// every request it received on it, the first included.
type member struct {
	stream webhooksv1.EventStreamService_ConsumeServer
	mu     sync.Mutex
	reqs   []*webhooksv1.ConsumeRequest
	token  string
}

// recv receives the next request and records it.
func (m *member) recv() (*webhooksv1.ConsumeRequest, error) {
	req, err := m.stream.Recv()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.reqs = append(m.reqs, proto.Clone(req).(*webhooksv1.ConsumeRequest))
	m.mu.Unlock()
	return req, nil
}

func (m *member) requests() []*webhooksv1.ConsumeRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*webhooksv1.ConsumeRequest(nil), m.reqs...)
}

// settled receives requests until n events have been acked or nacked in all,
// and returns the acks and nacks in the order they came.
func (m *member) settled(n int) (acks []uint64, nacks []*webhooksv1.Nack, err error) {
	for len(acks)+len(nacks) < n {
		req, err := m.recv()
		if err != nil {
			return acks, nacks, err
		}
		acks = append(acks, req.GetAckSequences()...)
		nacks = append(nacks, req.GetNacks()...)
	}
	return acks, nacks, nil
}

func (m *member) send(resp *webhooksv1.ConsumeResponse) error { return m.stream.Send(resp) }

// groupSession scripts one Consume call of the fake gateway, which has
// already received and recorded the first request.
type groupSession func(m *member) error

// fakeGroups serves the scripted sessions in order, one per Consume call.
// Past the script it answers UNIMPLEMENTED, which ends Consume.
type fakeGroups struct {
	webhooksv1.UnimplementedEventStreamServiceServer
	sessions []groupSession
	mu       sync.Mutex
	members  []*member
}

func (f *fakeGroups) Consume(stream webhooksv1.EventStreamService_ConsumeServer) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	m := &member{stream: stream, token: strings.Join(md.Get("authorization"), ",")}
	f.mu.Lock()
	i := len(f.members)
	f.members = append(f.members, m)
	f.mu.Unlock()
	if _, err := m.recv(); err != nil {
		return err
	}
	if i >= len(f.sessions) {
		return status.Error(codes.Unimplemented, "fake gateway: script exhausted")
	}
	return f.sessions[i](m)
}

func (f *fakeGroups) calls() []*member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*member(nil), f.members...)
}

func startGroups(t *testing.T, f *fakeGroups) webhooksv1.EventStreamServiceClient {
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

// deliveries is one response carrying the events seqs, first deliveries.
func deliveries(seqs ...uint64) *webhooksv1.ConsumeResponse {
	return redeliveries(1, seqs...)
}

func redeliveries(attempt uint32, seqs ...uint64) *webhooksv1.ConsumeResponse {
	resp := &webhooksv1.ConsumeResponse{}
	for _, seq := range seqs {
		resp.Events = append(resp.Events, &webhooksv1.ConsumedEvent{Event: newEvent(seq), DeliveryAttempt: attempt})
	}
	return resp
}

// deliversAll scripts a session that sends resps, waits until the member
// settled every event in them, confirms the acks, then ends with err.
func deliversAll(err error, resps ...*webhooksv1.ConsumeResponse) groupSession {
	return func(m *member) error {
		n := 0
		for _, r := range resps {
			if e := m.send(r); e != nil {
				return e
			}
			n += len(r.GetEvents())
		}
		acks, _, e := m.settled(n)
		if e != nil {
			return e
		}
		if len(acks) > 0 {
			if e := m.send(&webhooksv1.ConsumeResponse{AcknowledgedSequences: acks}); e != nil {
				return e
			}
		}
		return err
	}
}

func joinRequest() *webhooksv1.ConsumeRequest {
	return &webhooksv1.ConsumeRequest{
		ConsumerGroup:       "crm-sync",
		EventTypes:          []webhooksv1.EventType{webhooksv1.EventType_EVENT_TYPE_MESSAGE_RECEIVED},
		StartPosition:       &webhooksv1.ConsumeRequest_FromOldest{FromOldest: true},
		AckDeadline:         durationpb.New(5 * time.Second),
		MaxDeliveryAttempts: 3,
		MaxInFlight:         10,
	}
}

// groupRecorder collects what Consume hands over and its retry delays.
type groupRecorder struct {
	mu       sync.Mutex
	seqs     []uint64
	attempts []uint32
	acked    []uint64
	delays   []time.Duration
}

func (r *groupRecorder) config() ConsumeConfig {
	return ConsumeConfig{
		Request:        joinRequest(),
		InitialBackoff: 100 * time.Millisecond,
		MaxBackoff:     300 * time.Millisecond,
		OnAcknowledged: func(seqs []uint64) {
			r.mu.Lock()
			r.acked = append(r.acked, seqs...)
			r.mu.Unlock()
		},
		sleep: func(ctx context.Context, d time.Duration) error {
			r.mu.Lock()
			r.delays = append(r.delays, d)
			r.mu.Unlock()
			return ctx.Err()
		},
	}
}

// handler records each event and fails those fail returns an error for.
func (r *groupRecorder) handler(fail func(seq uint64) error) ConsumeHandler {
	return func(_ context.Context, ev *webhooksv1.ConsumedEvent) error {
		r.mu.Lock()
		r.seqs = append(r.seqs, ev.GetEvent().GetSequence())
		r.attempts = append(r.attempts, ev.GetDeliveryAttempt())
		r.mu.Unlock()
		if fail != nil {
			return fail(ev.GetEvent().GetSequence())
		}
		return nil
	}
}

var groupDeleted = status.Error(codes.NotFound, "consumer group \"crm-sync\" was deleted")

// checkJoinedOnly checks that the call's first request is the configured one
// and that every later one carries nothing but acks and nacks.
func checkJoinedOnly(t *testing.T, i int, m *member, want *webhooksv1.ConsumeRequest) {
	t.Helper()
	reqs := m.requests()
	if len(reqs) == 0 || !proto.Equal(reqs[0], want) {
		t.Fatalf("Consume call %d: first request %v, want %v", i, reqs, want)
	}
	for _, req := range reqs[1:] {
		only := &webhooksv1.ConsumeRequest{AckSequences: req.GetAckSequences(), Nacks: req.GetNacks()}
		if !proto.Equal(req, only) || len(req.GetAckSequences())+len(req.GetNacks()) == 0 {
			t.Errorf("Consume call %d: a later request %v, want only acks and nacks", i, req)
		}
	}
}

func TestConsumeAcksEachHandledEventAndReportsTheDurableAcks(t *testing.T) {
	f := &fakeGroups{sessions: []groupSession{
		deliversAll(groupDeleted, deliveries(1, 2), &webhooksv1.ConsumeResponse{Heartbeat: &webhooksv1.Heartbeat{LastSequence: 2}},
			redeliveries(2, 3)),
	}}
	var r groupRecorder
	var heartbeats []uint64
	cfg := r.config()
	cfg.OnHeartbeat = func(hb *webhooksv1.Heartbeat) { heartbeats = append(heartbeats, hb.GetLastSequence()) }
	err := Consume(context.Background(), startGroups(t, f), cfg, r.handler(nil))

	if status.Code(err) != codes.NotFound {
		t.Fatalf("Consume returned %v, want the NOT_FOUND that ended the script", err)
	}
	checkSeqs(t, r.seqs, 1, 2, 3)
	if !slices.Equal(r.attempts, []uint32{1, 1, 2}) {
		t.Errorf("delivery attempts %v, want [1 1 2]", r.attempts)
	}
	calls := f.calls()
	if len(calls) != 1 {
		t.Fatalf("%d Consume calls, want 1", len(calls))
	}
	checkJoinedOnly(t, 0, calls[0], joinRequest())
	var acks []uint64
	for _, req := range calls[0].requests()[1:] {
		acks = append(acks, req.GetAckSequences()...)
		if len(req.GetNacks()) != 0 {
			t.Errorf("nacked %v, want none", req.GetNacks())
		}
	}
	// One at a time (Concurrency 1), so acks go out in delivery order.
	checkSeqs(t, acks, 1, 2, 3)
	checkSeqs(t, r.acked, 1, 2, 3)
	checkSeqs(t, heartbeats, 2)
}

func TestConsumeNacksWithTheHandlersErrorText(t *testing.T) {
	long := strings.Repeat("é", 600) // 1200 bytes; 1024 is inside a rune.
	f := &fakeGroups{sessions: []groupSession{
		func(m *member) error {
			if err := m.send(deliveries(1, 2, 3, 4)); err != nil {
				return err
			}
			acks, nacks, err := m.settled(4)
			if err != nil {
				return err
			}
			checkSeqs(t, acks, 1)
			if len(nacks) != 3 {
				t.Errorf("nacks %v, want 3", nacks)
				return groupDeleted
			}
			if nacks[0].GetSequence() != 2 || nacks[0].GetError() != "CRM answered 503" {
				t.Errorf("nack %v, want sequence 2 with the handler's error text", nacks[0])
			}
			want := strings.Repeat("é", 512) // 1024 bytes exactly.
			if nacks[1].GetSequence() != 3 || nacks[1].GetError() != want {
				t.Errorf("nack of a long error: sequence %d, %d bytes; want 3, the first 1024 bytes",
					nacks[1].GetSequence(), len(nacks[1].GetError()))
			}
			if e := nacks[2].GetError(); nacks[2].GetSequence() != 4 || !utf8.ValidString(e) || !strings.HasPrefix(e, "bad byte ") {
				t.Errorf("nack of an error that is not UTF-8: %v, want its text made valid", nacks[2])
			}
			return groupDeleted
		},
	}}
	var r groupRecorder
	err := Consume(context.Background(), startGroups(t, f), r.config(), r.handler(func(seq uint64) error {
		switch seq {
		case 2:
			return errors.New("CRM answered 503")
		case 3:
			return errors.New(long)
		case 4:
			return errors.New("bad byte \xff")
		}
		return nil
	}))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Consume returned %v, want the script's NOT_FOUND", err)
	}
	checkJoinedOnly(t, 0, f.calls()[0], joinRequest())
}

func TestConsumeJoinsAgainAfterABreakWithTheSameFirstRequest(t *testing.T) {
	f := &fakeGroups{sessions: []groupSession{
		deliversAll(unavailable, deliveries(1)),
		deliversAll(nil, deliveries(2)), // A stream that just ends is a break too.
		deliversAll(status.Error(codes.ResourceExhausted, "too many members")),
		deliversAll(groupDeleted, deliveries(3)),
	}}
	var r groupRecorder
	cfg := r.config()
	cfg.Token = "s3cret"
	err := Consume(context.Background(), startGroups(t, f), cfg, r.handler(nil))

	if status.Code(err) != codes.NotFound {
		t.Fatalf("Consume returned %v, want the script's NOT_FOUND", err)
	}
	checkSeqs(t, r.seqs, 1, 2, 3)
	calls := f.calls()
	if len(calls) != 4 {
		t.Fatalf("%d Consume calls, want 4", len(calls))
	}
	for i, m := range calls {
		checkJoinedOnly(t, i, m, joinRequest())
		if m.token != "Bearer s3cret" {
			t.Errorf("Consume call %d: authorization %q, want \"Bearer s3cret\"", i, m.token)
		}
	}
	// 100 ms, reset after each stream that delivered; the third delivered
	// nothing, so the fourth waited 200 ms.
	nominal := []time.Duration{100, 100, 200}
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

func TestConsumeDropsTheOutcomeOfAnEventWhoseStreamBroke(t *testing.T) {
	handling := make(chan struct{})
	f := &fakeGroups{sessions: []groupSession{
		func(m *member) error {
			if err := m.send(deliveries(5)); err != nil {
				return err
			}
			<-handling
			return unavailable
		},
		// The gateway redelivers what the disconnected member held.
		deliversAll(groupDeleted, redeliveries(2, 5)),
	}}
	var r groupRecorder
	var cancelled error
	err := Consume(context.Background(), startGroups(t, f), r.config(),
		func(ctx context.Context, ev *webhooksv1.ConsumedEvent) error {
			r.handler(nil)(ctx, ev)
			if ev.GetDeliveryAttempt() == 1 {
				close(handling)
				<-ctx.Done() // Ends with the stream.
				cancelled = ctx.Err()
				return cancelled
			}
			return nil
		})

	if status.Code(err) != codes.NotFound {
		t.Fatalf("Consume returned %v, want the script's NOT_FOUND", err)
	}
	if cancelled == nil {
		t.Fatal("the handler's ctx did not end with its stream")
	}
	checkSeqs(t, r.seqs, 5, 5)
	calls := f.calls()
	if n := len(calls[0].requests()); n != 1 {
		t.Errorf("the broken stream got %d requests, want only the first", n)
	}
	// Only the ack of the redelivery, not the nack of the first delivery,
	// whose stream was gone.
	reqs := calls[1].requests()
	if len(reqs) != 2 || !slices.Equal(reqs[1].GetAckSequences(), []uint64{5}) || len(reqs[1].GetNacks()) != 0 {
		t.Errorf("the new stream got %v, want the first request and then the ack of 5", reqs)
	}
}

func TestConsumePermanentErrorsAreReturnedWithoutRetry(t *testing.T) {
	for _, code := range []codes.Code{
		codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated,
		codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented,
	} {
		t.Run(code.String(), func(t *testing.T) {
			f := &fakeGroups{sessions: []groupSession{deliversAll(status.Error(code, "no"), deliveries(1))}}
			var r groupRecorder
			err := Consume(context.Background(), startGroups(t, f), r.config(), r.handler(nil))
			if status.Code(err) != code {
				t.Fatalf("Consume returned %v, want code %v", err, code)
			}
			if len(f.calls()) != 1 || len(r.delays) != 0 {
				t.Fatalf("retried a permanent error: %d calls, delays %v", len(f.calls()), r.delays)
			}
		})
	}
}

func TestConsumeOutOfRangeIsReturnedWithItsResumeInfo(t *testing.T) {
	want := &webhooksv1.ResumeInfo{LastSentSequence: 3, OldestAvailableSequence: 9, LastSequence: 20}
	f := &fakeGroups{sessions: []groupSession{
		deliversAll(withResumeInfo(codes.OutOfRange, "the group's position is no longer retained", want)),
	}}
	var r groupRecorder
	err := Consume(context.Background(), startGroups(t, f), r.config(), r.handler(nil))
	if got, ok := ResumeInfoFromError(err); status.Code(err) != codes.OutOfRange || !ok || !proto.Equal(got, want) {
		t.Fatalf("Consume returned %v with ResumeInfo %v, want OUT_OF_RANGE with %v", err, got, want)
	}
}

func TestConsumeHandlesUpToConcurrencyEventsAtOnce(t *testing.T) {
	f := &fakeGroups{sessions: []groupSession{deliversAll(groupDeleted, deliveries(1, 2, 3))}}
	var r groupRecorder
	cfg := r.config()
	cfg.Concurrency = 3
	var started sync.WaitGroup
	started.Add(3)
	all := make(chan struct{})
	go func() {
		started.Wait()
		close(all)
	}()
	err := Consume(context.Background(), startGroups(t, f), cfg,
		func(ctx context.Context, ev *webhooksv1.ConsumedEvent) error {
			// Acks only once all three run at the same time.
			started.Done()
			select {
			case <-all:
			case <-time.After(10 * time.Second):
				return errors.New("the other handlers did not start")
			}
			return r.handler(nil)(ctx, ev)
		})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Consume returned %v, want the script's NOT_FOUND", err)
	}
	if reqs := f.calls()[0].requests(); len(r.acked) != 3 {
		t.Fatalf("requests %v, want the three acked", reqs)
	}
	got := slices.Clone(r.acked)
	slices.Sort(got)
	checkSeqs(t, got, 1, 2, 3)
}

func TestConsumeConcurrencyIsCappedAtMaxInFlight(t *testing.T) {
	cfg := ConsumeConfig{Request: &webhooksv1.ConsumeRequest{ConsumerGroup: "g", MaxInFlight: 2}, Concurrency: 50}
	cfg.setDefaults()
	if cfg.Concurrency != 2 {
		t.Errorf("Concurrency %d, want max_in_flight (2)", cfg.Concurrency)
	}
	cfg = ConsumeConfig{Request: &webhooksv1.ConsumeRequest{ConsumerGroup: "g"}, Concurrency: 5000}
	cfg.setDefaults()
	if cfg.Concurrency != DefaultMaxInFlight {
		t.Errorf("Concurrency %d, want DefaultMaxInFlight", cfg.Concurrency)
	}
}

func TestConsumeSendsTheOutcomesReadyTogetherInOneRequest(t *testing.T) {
	more := make(chan outcome, 3)
	more <- outcome{seq: 8}
	more <- outcome{seq: 9, err: errors.New("no")}
	more <- outcome{seq: 10}
	got := batchOutcomes(outcome{seq: 7}, more)
	want := &webhooksv1.ConsumeRequest{
		AckSequences: []uint64{7, 8, 10},
		Nacks:        []*webhooksv1.Nack{{Sequence: 9, Error: "no"}},
	}
	if !proto.Equal(got, want) {
		t.Fatalf("batched %v, want %v", got, want)
	}
	if got := batchOutcomes(outcome{seq: 11}, more); !proto.Equal(got, &webhooksv1.ConsumeRequest{AckSequences: []uint64{11}}) {
		t.Fatalf("batched %v, want only the ack of 11", got)
	}
}

func TestConsumeBatchesTheOutcomesOfABurst(t *testing.T) {
	// Handlers far quicker than the gateway reads: whatever the timing, all
	// 200 outcomes arrive, and the requests carry no more than that.
	seqs := make([]uint64, 200)
	for i := range seqs {
		seqs[i] = uint64(i + 1)
	}
	f := &fakeGroups{sessions: []groupSession{deliversAll(groupDeleted, deliveries(seqs[:100]...), deliveries(seqs[100:]...))}}
	var r groupRecorder
	cfg := r.config()
	cfg.Request.MaxInFlight = 200
	cfg.Concurrency = 4
	err := Consume(context.Background(), startGroups(t, f), cfg, r.handler(nil))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("Consume returned %v, want the script's NOT_FOUND", err)
	}
	reqs := f.calls()[0].requests()[1:]
	var acks []uint64
	for _, req := range reqs {
		acks = append(acks, req.GetAckSequences()...)
	}
	slices.Sort(acks)
	checkSeqs(t, acks, seqs...)
	t.Logf("200 acks in %d requests", len(reqs))
}

func TestConsumeTheHandlersCtxDoesNotCarryTheToken(t *testing.T) {
	f := &fakeGroups{sessions: []groupSession{deliversAll(groupDeleted, deliveries(1))}}
	var r groupRecorder
	cfg := r.config()
	cfg.Token = "s3cret"
	var leaked []string
	Consume(context.Background(), startGroups(t, f), cfg, func(ctx context.Context, _ *webhooksv1.ConsumedEvent) error {
		md, _ := metadata.FromOutgoingContext(ctx)
		leaked = md.Get("authorization")
		return nil
	})
	if len(leaked) != 0 {
		t.Fatalf("the handler's ctx would send authorization %q to whatever it calls", leaked)
	}
}

func TestConsumeCancellingTheContextEndsIt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeGroups{sessions: []groupSession{
		func(m *member) error {
			if err := m.send(deliveries(1)); err != nil {
				return err
			}
			<-m.stream.Context().Done()
			return m.stream.Context().Err()
		},
	}}
	err := Consume(ctx, startGroups(t, f), ConsumeConfig{Request: joinRequest()},
		func(context.Context, *webhooksv1.ConsumedEvent) error {
			cancel()
			return nil
		})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume returned %v, want context.Canceled", err)
	}
}

func TestConsumeCancellingTheContextEndsTheBackoffWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fakeGroups{sessions: []groupSession{deliversAll(unavailable)}}
	cfg := ConsumeConfig{Request: joinRequest(), InitialBackoff: time.Hour, OnRetry: func(error, time.Duration) { cancel() }}
	err := Consume(ctx, startGroups(t, f), cfg, func(context.Context, *webhooksv1.ConsumedEvent) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume returned %v, want context.Canceled", err)
	}
}

func TestConsumeWithoutAGroupIsRefusedWithoutACall(t *testing.T) {
	f := &fakeGroups{}
	client := startGroups(t, f)
	for _, req := range []*webhooksv1.ConsumeRequest{nil, {MaxInFlight: 5}} {
		if err := Consume(context.Background(), client, ConsumeConfig{Request: req},
			func(context.Context, *webhooksv1.ConsumedEvent) error { return nil }); err == nil {
			t.Errorf("Consume with request %v returned nil, want an error", req)
		}
	}
	if n := len(f.calls()); n != 0 {
		t.Fatalf("%d Consume calls, want none", n)
	}
}

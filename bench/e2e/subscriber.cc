// Benchmark subscriber: opens N Subscribe streams to the gateway and counts
// what arrives, from one thread driving a completion queue.
//
// Streams read raw bytes through grpc::GenericStub so that the client does
// not spend the CPU it shares with the gateway on parsing 100 copies of every
// event: each message is classified from its first bytes (field 1 = event,
// field 2 = heartbeat, field 3 = a batch of events) and each event's sequence
// read from its leading varint. Stream 0 alone also reads every event's
// receive_time, to measure end-to-end latency from it (same machine, same
// clock) to the moment the message arrived.
//
// Prints one JSON line when every stream has seen --expect events or has been
// idle for --idle_exit_ms after the first event.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/byte_buffer.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "convocore/webhooks/v1/event_stream_service.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "gateway gRPC address");
ABSL_FLAG(int, streams, 1, "Subscribe streams to open");
ABSL_FLAG(int, channels, 1, "gRPC channels to spread the streams over");
ABSL_FLAG(uint64_t, expect, 0,
          "stop once every stream saw this many events (0: wait for idle)");
ABSL_FLAG(int, idle_exit_ms, 3000,
          "stop after this long without any event, once events arrived");
ABSL_FLAG(int, max_seconds, 900, "hard stop");
ABSL_FLAG(std::string, ready_file, "",
          "file created once every stream is open");
ABSL_FLAG(uint32_t, max_events_per_response, 0,
          "SubscribeRequest.max_events_per_response: at most this many events "
          "per response (0: the gateway's default, 100)");

namespace {

namespace v1 = convocore::webhooks::v1;

constexpr char kMethod[] =
    "/convocore.webhooks.v1.EventStreamService/Subscribe";

// Reads a base-128 varint; returns false if the input ends first.
bool ReadVarint(const uint8_t*& p, const uint8_t* end, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; p < end && shift < 64; shift += 7) {
    uint8_t b = *p++;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *out = v;
      return true;
    }
  }
  return false;
}

struct Stream {
  enum class State { kStart, kWrite, kWritesDone, kRead, kFinish, kDone };
  int index = 0;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call;
  grpc::ByteBuffer buffer;
  grpc::Status status;
  State state = State::kStart;
  uint64_t events = 0;
  uint64_t heartbeats = 0;
  uint64_t event_messages = 0;
  uint64_t last_sequence = 0;
  uint64_t out_of_order = 0;
  std::vector<double> latencies_us;  // stream 0 only
};

// The fields this client reads by hand, tied to the contract.
static_assert(convocore::webhooks::v1::SubscribeResponse::kEventsFieldNumber ==
              1);
static_assert(convocore::webhooks::v1::Event::kSequenceFieldNumber == 1);
static_assert(convocore::webhooks::v1::Event::kReceiveTimeFieldNumber == 5);
constexpr uint8_t kEventsTag = (1 << 3) | 2;
constexpr uint8_t kSequenceTag = (1 << 3) | 0;

// The receive_time (field 5, a Timestamp) of an Event's bytes, found by
// walking its fields rather than parsing it: a full parse of every event
// cost this client as much CPU as a third of the gateway's work per event,
// on the cores they share.
bool ReceiveTime(const uint8_t* p, const uint8_t* end, absl::Time* out) {
  while (p < end) {
    uint64_t key = 0;
    if (!ReadVarint(p, end, &key)) return false;
    const int wire_type = key & 7;
    uint64_t value = 0;
    if (wire_type == 0) {
      if (!ReadVarint(p, end, &value)) return false;
      continue;
    }
    if (wire_type != 2 || !ReadVarint(p, end, &value) ||
        value > static_cast<uint64_t>(end - p)) {
      return false;
    }
    if ((key >> 3) != 5) {
      p += value;
      continue;
    }
    const uint8_t* ts_end = p + value;
    uint64_t seconds = 0, nanos = 0;
    while (p < ts_end) {
      uint64_t ts_key = 0, v = 0;
      if (!ReadVarint(p, ts_end, &ts_key) || (ts_key & 7) != 0 ||
          !ReadVarint(p, ts_end, &v)) {
        return false;
      }
      if (ts_key >> 3 == 1) seconds = v;
      if (ts_key >> 3 == 2) nanos = v;
    }
    *out = absl::FromUnixSeconds(static_cast<int64_t>(seconds)) +
           absl::Nanoseconds(static_cast<int64_t>(nanos));
    return true;
  }
  return false;
}

// Counts one event from its bytes (an Event whose field 1 is the sequence);
// on stream 0, records its latency too.
void CountEvent(Stream& s, const uint8_t* p, const uint8_t* end,
                absl::Time now) {
  if (s.index == 0) {
    absl::Time received;
    if (ReceiveTime(p, end, &received)) {
      s.latencies_us.push_back(absl::ToDoubleMicroseconds(now - received));
    }
  }
  uint64_t seq = 0;
  if (p < end && *p == kSequenceTag) {
    ++p;
    ReadVarint(p, end, &seq);
  }
  if (seq <= s.last_sequence) ++s.out_of_order;
  s.last_sequence = seq;
  ++s.events;
}

// Counts the events of one SubscribeResponse (each field 1 entry is an
// event; a heartbeat is field 2); returns how many.
uint64_t CountEvents(Stream& s, const uint8_t* p, const uint8_t* end,
                     absl::Time now) {
  uint64_t n = 0;
  while (p < end && *p == kEventsTag) {
    ++p;
    uint64_t event_len = 0;
    if (!ReadVarint(p, end, &event_len) ||
        event_len > static_cast<uint64_t>(end - p)) {
      break;
    }
    CountEvent(s, p, p + event_len, now);
    p += event_len;
    ++n;
  }
  return n;
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int n = absl::GetFlag(FLAGS_streams);
  const int nchan = std::max(1, absl::GetFlag(FLAGS_channels));
  const uint64_t expect = absl::GetFlag(FLAGS_expect);

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < nchan; ++i) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id",
                i);  // distinct channels, not shared subchannels
    args.SetMaxReceiveMessageSize(64 << 20);
    channels.push_back(grpc::CreateCustomChannel(
        absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials(), args));
  }
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (auto& c : channels)
    stubs.push_back(std::make_unique<grpc::GenericStub>(c));

  v1::SubscribeRequest request;  // every type, from now
  request.set_max_events_per_response(
      absl::GetFlag(FLAGS_max_events_per_response));
  std::string request_bytes = request.SerializeAsString();

  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < n; ++i) {
    auto s = std::make_unique<Stream>();
    s->index = i;
    s->call = stubs[i % nchan]->PrepareCall(&s->ctx, kMethod, &cq);
    s->call->StartCall(s.get());
    streams.push_back(std::move(s));
  }

  int open = 0, finished = 0;
  bool ready_signalled = false;
  absl::Time last_event = absl::InfinitePast();
  const absl::Time hard_stop =
      absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_max_seconds));
  const absl::Duration idle =
      absl::Milliseconds(absl::GetFlag(FLAGS_idle_exit_ms));
  absl::Time first_event = absl::InfinitePast();
  bool cancelling = false;

  auto all_done = [&] {
    if (expect == 0) return false;
    for (auto& s : streams) {
      if (s->events < expect) return false;
    }
    return true;
  };

  while (finished < n) {
    void* tag;
    bool ok;
    auto deadline =
        std::chrono::system_clock::now() + std::chrono::milliseconds(100);
    auto r = cq.AsyncNext(&tag, &ok, deadline);
    absl::Time now = absl::Now();
    if (!cancelling &&
        (now > hard_stop || all_done() ||
         (last_event != absl::InfinitePast() && now - last_event > idle))) {
      cancelling = true;
      for (auto& s : streams) s->ctx.TryCancel();
    }
    if (r != grpc::CompletionQueue::GOT_EVENT) continue;
    Stream* s = static_cast<Stream*>(tag);
    switch (s->state) {
      case Stream::State::kStart: {
        if (!ok) {
          s->state = Stream::State::kFinish;
          s->call->Finish(&s->status, s);
          break;
        }
        grpc::Slice slice(request_bytes);
        grpc::ByteBuffer req(&slice, 1);
        s->state = Stream::State::kWrite;
        s->call->Write(req, s);
        break;
      }
      case Stream::State::kWrite:
        s->state = Stream::State::kWritesDone;
        s->call->WritesDone(s);
        break;
      case Stream::State::kWritesDone:
        if (++open == n && !ready_signalled) {
          ready_signalled = true;
          if (!absl::GetFlag(FLAGS_ready_file).empty()) {
            FILE* f = std::fopen(absl::GetFlag(FLAGS_ready_file).c_str(), "w");
            if (f) std::fclose(f);
          }
        }
        s->state = Stream::State::kRead;
        s->call->Read(&s->buffer, s);
        break;
      case Stream::State::kRead: {
        if (!ok) {
          s->state = Stream::State::kFinish;
          s->call->Finish(&s->status, s);
          break;
        }
        std::vector<grpc::Slice> slices;
        s->buffer.Dump(&slices);
        std::string bytes;
        for (auto& sl : slices)
          bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
        const uint8_t* p = reinterpret_cast<const uint8_t*>(bytes.data());
        if (CountEvents(*s, p, p + bytes.size(), now) > 0) {
          ++s->event_messages;
          last_event = now;
          if (first_event == absl::InfinitePast()) first_event = now;
        } else {
          ++s->heartbeats;
        }
        s->call->Read(&s->buffer, s);
        break;
      }
      case Stream::State::kFinish:
        s->state = Stream::State::kDone;
        ++finished;
        break;
      case Stream::State::kDone:
        break;
    }
  }

  uint64_t messages = 0;
  for (auto& s : streams) messages += s->event_messages;
  uint64_t total = 0, min_events = UINT64_MAX, max_events = 0, disorder = 0,
           cut_off = 0;
  for (auto& s : streams) {
    total += s->events;
    min_events = std::min(min_events, s->events);
    max_events = std::max(max_events, s->events);
    disorder += s->out_of_order;
    if (s->status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED)
      ++cut_off;
  }
  double seconds = last_event > first_event
                       ? absl::ToDoubleSeconds(last_event - first_event)
                       : 0;
  std::vector<double> lat;
  if (!streams.empty()) lat = std::move(streams[0]->latencies_us);
  std::printf(
      "{\"streams\":%d,\"events_total\":%llu,\"events_min\":%llu,\"events_"
      "max\":%llu,"
      "\"messages\":%llu,\"out_of_order\":%llu,\"cut_off\":%llu,\"seconds\":%."
      "3f,\"deliveries_per_s\":%.0f,"
      "\"latency_us\":{\"n\":%zu,\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,"
      "\"max\":%.1f}}\n",
      n, (unsigned long long)total, (unsigned long long)min_events,
      (unsigned long long)max_events, (unsigned long long)messages,
      (unsigned long long)disorder, (unsigned long long)cut_off, seconds,
      seconds > 0 ? total / seconds : 0.0, lat.size(), Percentile(lat, 0.50),
      Percentile(lat, 0.99), Percentile(lat, 0.999),
      lat.empty() ? 0.0 : *std::max_element(lat.begin(), lat.end()));
  return 0;
}

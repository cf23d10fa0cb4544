// The JetStream store (`--store=jetstream`): events live in a NATS
// JetStream stream shared by every gateway replica, which assigns their
// sequences. See docs/design/jetstream.md.
//
// - Publish() sends one event with Nats-Msg-Id = its id and reports the
//   PubAck: the sequence once JetStream stored it (on a quorum of the
//   stream's replicas), whether it was a duplicate, or why not. Many
//   publishes are in flight at once.
// - StartReading() reads the whole stream in order with one ordered consumer
//   and hands each batch to the hub's Replicate(), with JetStream's
//   sequences. Append() is that path's store write: it keeps a bounded
//   window of recent events in memory for catch-up; older catch-up reads go
//   to JetStream.
// - A probe asks for the stream's state every second: Health() is its
//   outcome (readiness), and Stats() its figures.
//
// Thread-safe.
#ifndef SERVICES_JETSTREAM_JETSTREAM_EVENT_STORE_H_
#define SERVICES_JETSTREAM_JETSTREAM_EVENT_STORE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/hub/event_hub.h"
#include "services/hub/event_store.h"
#include "services/hub/in_memory_event_store.h"
#include "services/jetstream/stream_settings.h"

// cnats' types, kept out of our headers' users.
struct __natsConnection;
struct __jsCtx;
struct __natsSubscription;
struct __natsMsg;
struct jsPubAck;
struct jsPubAckErr;

namespace convocore::jetstream {

struct JetStreamOptions {
  // nats:// or tls:// URLs of the cluster's servers; the client fails over
  // among them and reconnects without limit.
  std::vector<std::string> servers;
  StreamRequirements stream;
  // A publish with no PubAck within this fails with UNAVAILABLE.
  absl::Duration publish_timeout = absl::Seconds(5);
  // Open() keeps trying to reach the stream this long.
  absl::Duration start_timeout = absl::Seconds(30);
  // Credentials: a .creds file (JWT and NKey seed), or an NKey seed file
  // with its public key. Never logged.
  std::string creds_file;
  std::string nkey_seed_file;
  std::string nkey_public;
  // TLS to the servers: a CA bundle, and a client certificate for mTLS.
  std::string ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  // The recent events kept in memory for catch-up.
  std::size_t window_events = 100'000;
  std::size_t window_bytes = 64 << 20;
  // Publishes waiting for their PubAck at most; more fail with UNAVAILABLE.
  std::size_t max_pending_publishes = 16'384;
  absl::Duration probe_interval = absl::Seconds(1);
  // Called with each PubAck's latency (publish to PubAck), on a NATS
  // thread: must be cheap.
  std::function<void(absl::Duration)> on_publish_ack = nullptr;
};

struct PublishAck {
  std::uint64_t sequence = 0;
  // JetStream already held a message with this id (within its duplicate
  // window) under `sequence`.
  bool duplicate = false;
};
using PublishDone = absl::AnyInvocable<void(absl::StatusOr<PublishAck>) &&>;

struct JetStreamCounters {
  std::uint64_t publishes_total = 0;         // PubAcks received, duplicates too
  std::uint64_t duplicates_total = 0;        // PubAcks that said duplicate
  std::uint64_t publish_failures_total = 0;  // errors and missing PubAcks
  // Publishes sent again because no stream leader took them ("no
  // responders": one is being elected), within their deadline.
  std::uint64_t publish_retries_total = 0;
  std::uint64_t pending_publishes = 0;  // waiting for a PubAck now
  std::uint64_t disconnects_total = 0;
  std::uint64_t reconnects_total = 0;
  std::uint64_t consumer_restarts_total = 0;  // the ordered consumer re-made
  // Stream messages that are not events (something else published into the
  // stream); streamed as they are.
  std::uint64_t foreign_messages_total = 0;
  std::uint64_t stream_last_sequence = 0;  // as of the last probe
  std::uint64_t read_sequence = 0;         // the newest this gateway has read
};

class JetStreamGroups;

class JetStreamEventStore final : public hub::EventStore {
 public:
  // Connects, then creates the stream or checks the existing one
  // (VerifySettings), within options.start_timeout. FAILED_PRECONDITION for
  // a stream that cannot keep the promise, UNAVAILABLE when JetStream did
  // not answer in time, INVALID_ARGUMENT for unusable options.
  static absl::StatusOr<std::unique_ptr<JetStreamEventStore>> Open(
      JetStreamOptions options);
  ~JetStreamEventStore() override;

  // Calls `done` exactly once, on a NATS thread (or this one when refused at
  // once): the PubAck, or UNAVAILABLE when JetStream refused the message,
  // gave no PubAck in time, is unhealthy, or too many publishes wait.
  // `payload` is the serialized Event without its sequence.
  void Publish(absl::string_view subject, absl::string_view msg_id,
               absl::string_view payload, PublishDone done)
      ABSL_LOCKS_EXCLUDED(pending_mu_);

  // Starts the ordered consumer after the newest sequence at Open(); each
  // batch read goes to `hub`'s Replicate(). `hub` (made with
  // external_sequences over this store) must stay alive until Close().
  absl::Status StartReading(hub::EventHub* hub) ABSL_LOCKS_EXCLUDED(read_mu_);

  JetStreamCounters Counters() const;

  // hub::EventStore.
  absl::Status Append(absl::Span<const hub::StoredEvent> batch) override;
  absl::StatusOr<std::vector<hub::StoredEvent>> ReadAfter(
      std::uint64_t after_sequence, std::size_t max_events) const override;
  absl::StatusOr<std::uint64_t> FirstSequenceAtOrAfter(
      absl::Time time) const override;
  hub::StoreStats Stats() const override ABSL_LOCKS_EXCLUDED(state_mu_);
  absl::Status Health() const override ABSL_LOCKS_EXCLUDED(state_mu_);
  absl::StatusOr<std::uint64_t> NewestSequence() const override;
  // Stops the reader and the probe, fails the publishes still waiting, and
  // closes the connection. Idempotent.
  void Close() override;

 private:
  struct Pending {
    PublishDone done;
    absl::Time start;
    // What to send again when JetStream has no responder for it yet.
    std::string subject;
    std::string id;
    std::string payload;
  };
  // A message the ordered consumer delivered, for the reader thread.
  struct Received {
    std::uint64_t sequence = 0;
    std::string payload;
  };
  struct StreamState {
    std::uint64_t first_sequence = 0;  // 0 when empty
    std::uint64_t last_sequence = 0;
    std::uint64_t messages = 0;
    std::uint64_t bytes = 0;
    std::string no_quorum;  // empty while a quorum stores publishes
  };

  explicit JetStreamEventStore(JetStreamOptions options);

  absl::Status Connect();
  absl::Status EnsureStream();
  absl::StatusOr<StreamState> QueryStream(absl::Duration wait) const;
  // The probe thread: stream state and health, and publishes past their
  // deadline failed.
  void ProbeLoop() ABSL_LOCKS_EXCLUDED(state_mu_, probe_mu_);
  void FailOverdue() ABSL_LOCKS_EXCLUDED(pending_mu_);
  // The caller's pending publish of `msg`, if it is still waiting.
  std::optional<Pending> TakePending(__natsMsg* msg)
      ABSL_LOCKS_EXCLUDED(pending_mu_);
  // A short-lived pull consumer from sequence `from`, or (when `from` is 0)
  // from the first message stored at or after `from_time`.
  absl::StatusOr<__natsSubscription*> OpenReader(std::uint64_t from,
                                                 absl::Time from_time) const;
  // Messages with sequence in [from, through], read by a short-lived
  // consumer, at most `max` of them.
  absl::StatusOr<std::vector<hub::StoredEvent>> ReadRange(
      std::uint64_t from, std::uint64_t through, std::size_t max) const;
  // (Re)makes the ordered consumer from `start_sequence`.
  absl::Status ConsumeFrom(std::uint64_t start_sequence)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(consumer_mu_);
  void ReadLoop(hub::EventHub* hub) ABSL_LOCKS_EXCLUDED(read_mu_);
  bool ReadWanted() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(read_mu_) {
    return read_stop_ || !received_.empty();
  }

  // What cnats' callbacks (jetstream_event_store.cc) call.
  void HandlePubAck(__natsMsg* msg, const jsPubAck* ack,
                    const jsPubAckErr* error) ABSL_LOCKS_EXCLUDED(pending_mu_);
  void HandleMessage(__natsMsg* msg) ABSL_LOCKS_EXCLUDED(read_mu_);
  void CountConnectionEvent(bool reconnected) ABSL_LOCKS_EXCLUDED(state_mu_);
  friend struct Callbacks;
  // Consumer groups share the store's connection and stream.
  friend class JetStreamGroups;

  const JetStreamOptions options_;
  hub::InMemoryEventStore window_;

  __natsConnection* connection_ = nullptr;
  __jsCtx* js_ = nullptr;

  mutable absl::Mutex pending_mu_;
  absl::flat_hash_map<__natsMsg*, Pending> pending_
      ABSL_GUARDED_BY(pending_mu_);
  bool closed_ ABSL_GUARDED_BY(pending_mu_) = false;

  mutable absl::Mutex state_mu_ ABSL_ACQUIRED_AFTER(consumer_mu_);
  absl::Status health_ ABSL_GUARDED_BY(state_mu_);
  // The reader could not hand events to the hub; stands until it can.
  absl::Status reader_error_ ABSL_GUARDED_BY(state_mu_);
  StreamState stream_ ABSL_GUARDED_BY(state_mu_);
  // The newest sequence this gateway holds: the stream's at Open(), then
  // each Append()'s.
  std::uint64_t head_ ABSL_GUARDED_BY(state_mu_) = 0;
  // Evidence that everything below it is gone (a read that started above
  // the sequence it asked for), in case the probe has not seen it yet.
  mutable std::uint64_t first_seen_ ABSL_GUARDED_BY(state_mu_) = 0;
  JetStreamCounters counters_ ABSL_GUARDED_BY(state_mu_);

  // The ordered consumer; its callback never takes consumer_mu_, so that
  // unsubscribing under it cannot wait on a callback that waits on it.
  absl::Mutex consumer_mu_;
  __natsSubscription* subscription_ ABSL_GUARDED_BY(consumer_mu_) = nullptr;
  bool consumer_stop_ ABSL_GUARDED_BY(consumer_mu_) = false;
  // Set once StartReading() made the first consumer; the probe remakes it
  // from then on.
  bool reading_ ABSL_GUARDED_BY(consumer_mu_) = false;

  // The reader: the ordered consumer's callback queues, the reader thread
  // drains in batches into the hub.
  absl::Mutex read_mu_ ABSL_ACQUIRED_AFTER(consumer_mu_);
  std::deque<Received> received_ ABSL_GUARDED_BY(read_mu_);
  bool read_stop_ ABSL_GUARDED_BY(read_mu_) = false;
  std::thread read_thread_;

  absl::Mutex probe_mu_;
  bool probe_stop_ ABSL_GUARDED_BY(probe_mu_) = false;
  std::thread probe_thread_;

  // Registers `pending` and hands it to cnats; answers it at once when
  // that fails.
  void SendPending(Pending pending);
  // Sends again, when due, the publishes JetStream had no responder for.
  void RetryLoop();
  absl::Mutex retry_mu_;
  std::deque<std::pair<absl::Time, Pending>> retries_
      ABSL_GUARDED_BY(retry_mu_);
  bool retry_stop_ ABSL_GUARDED_BY(retry_mu_) = false;
  // Moves on every retry queued: wakes the retry thread.
  std::uint64_t retries_queued_ ABSL_GUARDED_BY(retry_mu_) = 0;
  std::thread retry_thread_;

  // Set by cnats' closed handler, the last it calls for the connection.
  absl::Notification connection_closed_;
  absl::Mutex close_mu_;
  bool close_done_ ABSL_GUARDED_BY(close_mu_) = false;
};

}  // namespace convocore::jetstream

#endif  // SERVICES_JETSTREAM_JETSTREAM_EVENT_STORE_H_

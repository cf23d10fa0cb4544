#include "services/jetstream/jetstream_event_store.h"

#include <nats/nats.h>
#include <pthread.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "convocore/webhooks/v1/events.pb.h"
#include "services/hub/event_filter.h"
#include "services/jetstream/nats_calls.h"

namespace convocore::jetstream {

// cnats calls plain functions; these forward to the store.
struct Callbacks {
  static void PubAck(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error,
                     void* closure) {
    static_cast<JetStreamEventStore*>(closure)->HandlePubAck(msg, ack, error);
  }
  static void Message(natsConnection*, natsSubscription*, natsMsg* msg,
                      void* closure) {
    static_cast<JetStreamEventStore*>(closure)->HandleMessage(msg);
  }
  static void Disconnected(natsConnection*, void* closure) {
    static_cast<JetStreamEventStore*>(closure)->CountConnectionEvent(false);
  }
  static void Closed(natsConnection*, void* closure) {
    static_cast<JetStreamEventStore*>(closure)->connection_closed_.Notify();
  }
  static void Reconnected(natsConnection*, void* closure) {
    static_cast<JetStreamEventStore*>(closure)->CountConnectionEvent(true);
  }
};

namespace {

namespace v1 = convocore::webhooks::v1;

// cnats' JetStream error codes we act on.
constexpr int kStreamNotFound = 10059;

// The wait of one JetStream API request (stream info, consumer creation).
constexpr absl::Duration kApiWait = absl::Seconds(2);
// How long the reader may stay behind the stream, with no progress, before
// its consumer is made again from where it stopped.
constexpr absl::Duration kReaderStall = absl::Seconds(5);
constexpr std::size_t kReadBatch = 1024;
// A publish JetStream had no responder for (its stream's leader is being
// elected) is sent again after this, for as long as its deadline allows:
// the sender never retries, so a 503 here loses the webhook.
constexpr absl::Duration kNoResponderRetry = absl::Milliseconds(100);
// A stream replica the leader has not heard from for this long counts as
// gone. JetStream's Raft heartbeats every second, and its leader keeps its
// title for about 20 s after losing its followers, answering stream info all
// along: its word alone does not say that a publish can be stored.
constexpr absl::Duration kReplicaSilence = absl::Seconds(3);

// Empty when the stream has a leader that hears from a majority of its
// replicas (itself included); otherwise why not.
std::string NoQuorumReason(const jsClusterInfo* cluster) {
  if (cluster == nullptr) return "";  // a server without clustering
  if (cluster->Leader == nullptr || cluster->Leader[0] == '\0') {
    return "the stream has no leader";
  }
  int replicas = 1;
  int heard = 1;
  for (int k = 0; k < cluster->ReplicasLen; ++k) {
    const jsPeerInfo* peer = cluster->Replicas[k];
    ++replicas;
    if (!peer->Offline &&
        peer->Active < absl::ToInt64Nanoseconds(kReplicaSilence)) {
      ++heard;
    }
  }
  if (heard * 2 > replicas) return "";
  return absl::StrCat("the stream's leader hears from ", heard, " of its ",
                      replicas, " replicas, short of a majority");
}

using internal::ApiOptions;
using internal::Millis;
using internal::Nanos;
using internal::NatsError;

StreamSettings SettingsOf(const jsStreamConfig& config) {
  StreamSettings settings;
  settings.name = config.Name != nullptr ? config.Name : "";
  for (int i = 0; i < config.SubjectsLen; ++i) {
    settings.subjects.emplace_back(config.Subjects[i]);
  }
  settings.file_storage = config.Storage == js_FileStorage;
  settings.replicas = std::max<std::int64_t>(config.Replicas, 1);
  settings.limits_retention = config.Retention == js_LimitsPolicy;
  settings.discard_old = config.Discard == js_DiscardOld;
  settings.max_msgs = config.MaxMsgs <= 0 ? -1 : config.MaxMsgs;
  settings.max_bytes = config.MaxBytes <= 0 ? -1 : config.MaxBytes;
  settings.max_age = absl::Nanoseconds(config.MaxAge);
  settings.duplicate_window = absl::Nanoseconds(config.Duplicates);
  settings.deny_delete = config.DenyDelete;
  settings.deny_purge = config.DenyPurge;
  settings.sealed = config.Sealed;
  settings.mirror_or_sources =
      config.Mirror != nullptr || config.SourcesLen > 0;
  return settings;
}

// The stored event of one message: its sequence from JetStream's metadata,
// the rest from the event it carries. A message that is not an event
// (something else published into the stream) is kept as it is, so that
// subscribers see it rather than a gap; `*foreign` says so.
hub::StoredEvent StoredEventOf(std::uint64_t sequence,
                               absl::string_view payload, hub::EventKey* key,
                               bool* foreign) {
  v1::Event event;
  *foreign =
      !event.ParseFromArray(payload.data(), static_cast<int>(payload.size()));
  if (*foreign) {
    if (key != nullptr) *key = hub::EventKey{};
    hub::StoredEvent raw;
    raw.sequence = sequence;
    raw.receive_time = absl::Now();
    raw.event_bytes = hub::WithSequence(sequence, payload);
    return raw;
  }
  if (key != nullptr) *key = hub::KeyOf(event);
  hub::StoredEvent stored;
  stored.sequence = sequence;
  stored.receive_time = absl::FromUnixSeconds(event.receive_time().seconds()) +
                        absl::Nanoseconds(event.receive_time().nanos());
  stored.id = event.id();
  stored.event_bytes = hub::WithSequence(sequence, payload);
  return stored;
}

std::uint64_t StreamSequenceOf(natsMsg* msg) {
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) return 0;
  const std::uint64_t sequence = meta->Sequence.Stream;
  jsMsgMetaData_Destroy(meta);
  return sequence;
}

absl::string_view PayloadOf(natsMsg* msg) {
  return absl::string_view(
      natsMsg_GetData(msg),
      static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
}

hub::RetentionOptions WindowRetention(const JetStreamOptions& options) {
  hub::RetentionOptions window;
  const hub::RetentionOptions& stream = options.stream.retention;
  window.max_events = stream.max_events == 0
                          ? options.window_events
                          : std::min(options.window_events, stream.max_events);
  window.max_bytes = stream.max_bytes == 0
                         ? options.window_bytes
                         : std::min(options.window_bytes, stream.max_bytes);
  window.max_age = stream.max_age;
  return window;
}

}  // namespace

absl::StatusOr<std::unique_ptr<JetStreamEventStore>> JetStreamEventStore::Open(
    JetStreamOptions options) {
  if (options.servers.empty()) {
    return absl::InvalidArgumentError("no NATS server URL (--nats_url)");
  }
  if (absl::Status name = CheckStreamName(options.stream.stream); !name.ok()) {
    return name;
  }
  if (absl::Status prefix = CheckSubjectPrefix(options.stream.subject_prefix);
      !prefix.ok()) {
    return prefix;
  }
  if (options.stream.replicas < 1 || options.stream.replicas > 5) {
    return absl::InvalidArgumentError(
        "--nats_replicas must be 1 to 5 (JetStream's limit); 3 for high "
        "availability");
  }
  if (options.publish_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--nats_publish_timeout must be positive");
  }
  if (options.nkey_seed_file.empty() != options.nkey_public.empty()) {
    return absl::InvalidArgumentError(
        "--nats_nkey_file and --nats_nkey go together: the seed file and "
        "its public key");
  }
  if (!options.creds_file.empty() && !options.nkey_seed_file.empty()) {
    return absl::InvalidArgumentError(
        "--nats_creds_file and --nats_nkey_file are exclusive");
  }
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "--nats_tls_cert and --nats_tls_key go together");
  }
  std::unique_ptr<JetStreamEventStore> store(
      new JetStreamEventStore(std::move(options)));
  if (absl::Status connected = store->Connect(); !connected.ok()) {
    store->Close();
    return connected;
  }
  if (absl::Status ensured = store->EnsureStream(); !ensured.ok()) {
    store->Close();
    return ensured;
  }
  store->probe_thread_ = std::thread([s = store.get()] { s->ProbeLoop(); });
  store->retry_thread_ = std::thread([s = store.get()] { s->RetryLoop(); });
  return store;
}

JetStreamEventStore::JetStreamEventStore(JetStreamOptions options)
    : options_(std::move(options)), window_(WindowRetention(options_)) {}

JetStreamEventStore::~JetStreamEventStore() {
  Close();
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (connection_ != nullptr) natsConnection_Destroy(connection_);
}

absl::Status JetStreamEventStore::Connect() {
  natsOptions* raw = nullptr;
  if (natsStatus s = natsOptions_Create(&raw); s != NATS_OK) {
    return NatsError("cannot make the NATS client's options", s);
  }
  std::unique_ptr<natsOptions, void (*)(natsOptions*)> opts(
      raw, &natsOptions_Destroy);
  std::vector<const char*> servers;
  for (const std::string& server : options_.servers) {
    servers.push_back(server.c_str());
  }
  struct Step {
    const char* what;
    natsStatus status;
  };
  std::vector<Step> steps = {
      {"--nats_url", natsOptions_SetServers(opts.get(), servers.data(),
                                            static_cast<int>(servers.size()))},
      {"client name",
       natsOptions_SetName(opts.get(), "convocore-webhook-gateway")},
      // A gateway never gives up on its log: it reconnects for as long as
      // it runs, and is not ready meanwhile.
      {"reconnects", natsOptions_SetMaxReconnect(opts.get(), -1)},
      {"reconnect wait", natsOptions_SetReconnectWait(opts.get(), 250)},
      {"connect retries",
       natsOptions_SetRetryOnFailedConnect(opts.get(), true, nullptr, nullptr)},
      {"connect timeout", natsOptions_SetTimeout(opts.get(), 2000)},
      // A server that stops answering is noticed in seconds, not minutes.
      {"ping interval", natsOptions_SetPingInterval(opts.get(), 2000)},
      {"pings out", natsOptions_SetMaxPingsOut(opts.get(), 2)},
      {"disconnect handler", natsOptions_SetDisconnectedCB(
                                 opts.get(), &Callbacks::Disconnected, this)},
      {"reconnect handler",
       natsOptions_SetReconnectedCB(opts.get(), &Callbacks::Reconnected, this)},
      // cnats runs these handlers on its own thread, later: Close() waits
      // for this last one, so that none runs on a store already gone.
      {"close handler",
       natsOptions_SetClosedCB(opts.get(), &Callbacks::Closed, this)},
  };
  if (!options_.ca_file.empty() || !options_.tls_cert_file.empty()) {
    steps.push_back({"TLS", natsOptions_SetSecure(opts.get(), true)});
  }
  if (!options_.ca_file.empty()) {
    steps.push_back(
        {"--nats_ca_file", natsOptions_LoadCATrustedCertificates(
                               opts.get(), options_.ca_file.c_str())});
  }
  if (!options_.tls_cert_file.empty()) {
    steps.push_back({"--nats_tls_cert/--nats_tls_key",
                     natsOptions_LoadCertificatesChain(
                         opts.get(), options_.tls_cert_file.c_str(),
                         options_.tls_key_file.c_str())});
  }
  if (!options_.creds_file.empty()) {
    steps.push_back({"--nats_creds_file",
                     natsOptions_SetUserCredentialsFromFiles(
                         opts.get(), options_.creds_file.c_str(), nullptr)});
  }
  if (!options_.nkey_seed_file.empty()) {
    steps.push_back(
        {"--nats_nkey_file",
         natsOptions_SetNKeyFromSeed(opts.get(), options_.nkey_public.c_str(),
                                     options_.nkey_seed_file.c_str())});
  }
  for (const Step& step : steps) {
    if (step.status != NATS_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("the NATS client refused ", step.what, ": ",
                       natsStatus_GetText(step.status)));
    }
  }
  // With retries on, a cluster not up yet is NATS_NOT_YET_CONNECTED: the
  // client keeps trying in the background, and EnsureStream() waits.
  natsStatus s = natsConnection_Connect(&connection_, opts.get());
  if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
    return NatsError(absl::StrCat("cannot connect to NATS at ",
                                  absl::StrJoin(options_.servers, ",")),
                     s);
  }
  jsOptions js_options = ApiOptions(kApiWait);
  js_options.PublishAsync.MaxPending =
      static_cast<std::int64_t>(options_.max_pending_publishes);
  js_options.PublishAsync.AckHandler = &Callbacks::PubAck;
  js_options.PublishAsync.AckHandlerClosure = this;
  // A full pipeline refuses quickly: the HTTP thread answers 503 rather
  // than wait.
  js_options.PublishAsync.StallWait = 50;
  if (s = natsConnection_JetStream(&js_, connection_, &js_options);
      s != NATS_OK) {
    return NatsError("cannot make a JetStream context", s);
  }
  return absl::OkStatus();
}

absl::Status JetStreamEventStore::EnsureStream() {
  const StreamSettings want = DesiredSettings(options_.stream);
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  absl::Status last = absl::UnavailableError("no attempt was made");
  while (true) {
    jsOptions api = ApiOptions(kApiWait);
    jsStreamInfo* info = nullptr;
    jsErrCode js_error = static_cast<jsErrCode>(0);
    natsStatus s =
        js_GetStreamInfo(&info, js_, want.name.c_str(), &api, &js_error);
    if (s == NATS_OK) {
      const StreamSettings existing = SettingsOf(*info->Config);
      StreamState state{info->State.Msgs > 0 ? info->State.FirstSeq : 0,
                        info->State.LastSeq, info->State.Msgs,
                        info->State.Bytes, NoQuorumReason(info->Cluster)};
      jsStreamInfo_Destroy(info);
      if (absl::Status verified = VerifySettings(want, existing);
          !verified.ok()) {
        return verified;
      }
      // A stream just made, or one whose servers are restarting, elects
      // its leader first; the reader's consumer needs one.
      if (state.no_quorum.empty()) {
        absl::MutexLock lock(&state_mu_);
        stream_ = state;
        head_ = state.last_sequence;
        counters_.stream_last_sequence = state.last_sequence;
        counters_.read_sequence = state.last_sequence;
        return absl::OkStatus();
      }
      last = absl::UnavailableError(
          absl::StrCat("the JetStream stream ", want.name,
                       " cannot store events: ", state.no_quorum));
    } else if (s == NATS_NOT_FOUND || js_error == kStreamNotFound) {
      std::vector<const char*> subjects;
      for (const std::string& subject : want.subjects) {
        subjects.push_back(subject.c_str());
      }
      jsStreamConfig config;
      jsStreamConfig_Init(&config);
      config.Name = want.name.c_str();
      config.Description =
          "Convocore webhook events: written and read by the webhook gateway";
      config.Subjects = subjects.data();
      config.SubjectsLen = static_cast<int>(subjects.size());
      config.Retention = js_LimitsPolicy;
      config.Discard = js_DiscardOld;
      config.Storage = js_FileStorage;
      config.Replicas = want.replicas;
      config.MaxMsgs = want.max_msgs;
      config.MaxBytes = want.max_bytes;
      config.MaxAge = Nanos(want.max_age);
      config.Duplicates = Nanos(want.duplicate_window);
      config.DenyDelete = want.deny_delete;
      config.DenyPurge = want.deny_purge;
      js_error = static_cast<jsErrCode>(0);
      s = js_AddStream(&info, js_, &config, &api, &js_error);
      if (s == NATS_OK) {
        jsStreamInfo_Destroy(info);
        continue;  // read it back as any other replica would
      }
      last = NatsError(
          absl::StrCat("cannot create the JetStream stream ", want.name,
                       " with ", want.replicas, " replicas (--nats_replicas)"),
          s, js_error);
    } else {
      last = NatsError(
          absl::StrCat("no JetStream answer about the stream ", want.name,
                       " from ", absl::StrJoin(options_.servers, ",")),
          s, js_error);
    }
    if (absl::Now() + absl::Milliseconds(250) >= deadline) break;
    absl::SleepFor(absl::Milliseconds(250));
  }
  return absl::UnavailableError(absl::StrCat(
      last.message(), "; gave up after ",
      absl::FormatDuration(options_.start_timeout), " (--nats_start_timeout)"));
}

absl::StatusOr<JetStreamEventStore::StreamState>
JetStreamEventStore::QueryStream(absl::Duration wait) const {
  jsOptions api = ApiOptions(wait);
  jsStreamInfo* info = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, js_, options_.stream.stream.c_str(),
                                  &api, &js_error);
  if (s != NATS_OK) {
    return NatsError(absl::StrCat("no JetStream leader answered for stream ",
                                  options_.stream.stream),
                     s, js_error);
  }
  StreamState state{info->State.Msgs > 0 ? info->State.FirstSeq : 0,
                    info->State.LastSeq, info->State.Msgs, info->State.Bytes,
                    NoQuorumReason(info->Cluster)};
  jsStreamInfo_Destroy(info);
  return state;
}

void JetStreamEventStore::Publish(absl::string_view subject,
                                  absl::string_view msg_id,
                                  absl::string_view payload, PublishDone done) {
  // Fails fast only where waiting cannot help: no server connected, or a
  // reader that cannot stream. A stream without a leader may get one within
  // the publish's deadline (an election takes seconds), and the sender
  // never retries: the publish is tried, and retried, until then.
  if (natsConnection_Status(connection_) != NATS_CONN_STATUS_CONNECTED) {
    absl::Status health = Health();
    std::move(done)(absl::UnavailableError(absl::StrCat(
        "JetStream is unavailable: ",
        health.ok() ? "not connected to a NATS server" : health.message())));
    return;
  }
  {
    absl::MutexLock lock(&state_mu_);
    if (!reader_error_.ok()) {
      std::move(done)(absl::UnavailableError(
          absl::StrCat("JetStream is unavailable: ", reader_error_.message())));
      return;
    }
  }
  SendPending(Pending{.done = std::move(done),
                      .start = absl::Now(),
                      .subject = std::string(subject),
                      .id = std::string(msg_id),
                      .payload = std::string(payload)});
}

void JetStreamEventStore::SendPending(Pending pending) {
  natsMsg* msg = nullptr;
  if (natsStatus s = natsMsg_Create(&msg, pending.subject.c_str(), nullptr,
                                    pending.payload.data(),
                                    static_cast<int>(pending.payload.size()));
      s != NATS_OK) {
    std::move(pending.done)(NatsError("cannot make a NATS message", s));
    return;
  }
  // JetStream's de-duplication key: the same webhook through any replica,
  // or sent again here, is stored once.
  natsMsgHeader_Set(msg, "Nats-Msg-Id", pending.id.c_str());
  absl::Status refused;
  {
    absl::MutexLock lock(&pending_mu_);
    if (closed_) {
      refused = absl::UnavailableError("the JetStream store is closed");
    } else if (pending_.size() >= options_.max_pending_publishes) {
      refused = absl::UnavailableError(
          absl::StrCat(options_.max_pending_publishes,
                       " publishes already wait for their PubAck"));
    } else {
      // Registered first: the PubAck may arrive before the call returns.
      pending_.emplace(msg, std::move(pending));
    }
  }
  if (!refused.ok()) {
    natsMsg_Destroy(msg);
    std::move(pending.done)(std::move(refused));
    return;
  }
  natsMsg* sent = msg;
  jsPubOptions publish;
  jsPubOptions_Init(&publish);
  publish.MaxWait = Millis(options_.publish_timeout);
  publish.ExpectStream = options_.stream.stream.c_str();
  natsStatus s = js_PublishMsgAsync(js_, &msg, &publish);
  if (s == NATS_OK) return;
  // Not taken by the library: no PubAck will come for it.
  std::optional<Pending> failed = TakePending(sent);
  natsMsg_Destroy(msg);
  {
    absl::MutexLock lock(&state_mu_);
    ++counters_.publish_failures_total;
  }
  if (failed) {
    std::move(failed->done)(NatsError("cannot publish to JetStream", s));
  }
}

void JetStreamEventStore::RetryLoop() {
  pthread_setname_np(pthread_self(), "js-retry");
  absl::MutexLock lock(&retry_mu_);
  while (true) {
    const absl::Time due =
        retries_.empty() ? absl::InfiniteFuture() : retries_.front().first;
    const std::uint64_t seen = retries_queued_;
    auto woken = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(retry_mu_) {
      return retry_stop_ || retries_queued_ != seen;
    };
    retry_mu_.AwaitWithDeadline(absl::Condition(&woken), due);
    if (retry_stop_) return;
    std::vector<Pending> ready;
    const absl::Time now = absl::Now();
    while (!retries_.empty() && retries_.front().first <= now) {
      ready.push_back(std::move(retries_.front().second));
      retries_.pop_front();
    }
    retry_mu_.Unlock();
    for (Pending& pending : ready) SendPending(std::move(pending));
    retry_mu_.Lock();
  }
}

std::optional<JetStreamEventStore::Pending> JetStreamEventStore::TakePending(
    natsMsg* msg) {
  absl::MutexLock lock(&pending_mu_);
  auto it = pending_.find(msg);
  if (it == pending_.end()) return std::nullopt;
  std::optional<Pending> pending = std::move(it->second);
  pending_.erase(it);
  return pending;
}

void JetStreamEventStore::HandlePubAck(natsMsg* msg, const jsPubAck* ack,
                                       const jsPubAckErr* error) {
  std::optional<Pending> pending = TakePending(msg);
  natsMsg_Destroy(msg);
  // Already failed as overdue or at Close(): its caller has its answer.
  if (!pending) return;
  if (ack != nullptr) {
    {
      absl::MutexLock lock(&state_mu_);
      ++counters_.publishes_total;
      if (ack->Duplicate) ++counters_.duplicates_total;
    }
    if (options_.on_publish_ack) {
      options_.on_publish_ack(absl::Now() - pending->start);
    }
    std::move(pending->done)(
        PublishAck{.sequence = ack->Sequence, .duplicate = ack->Duplicate});
    return;
  }
  // No stream leader took it yet (one is being elected): the same message,
  // de-duplicated by its id, goes again while its deadline allows.
  if (error != nullptr && error->Err == NATS_NO_RESPONDERS &&
      absl::Now() + kNoResponderRetry <
          pending->start + options_.publish_timeout) {
    absl::MutexLock lock(&retry_mu_);
    if (!retry_stop_) {
      retries_.emplace_back(absl::Now() + kNoResponderRetry,
                            *std::move(pending));
      ++retries_queued_;
      absl::MutexLock state_lock(&state_mu_);
      ++counters_.publish_retries_total;
      return;
    }
  }
  {
    absl::MutexLock lock(&state_mu_);
    ++counters_.publish_failures_total;
  }
  std::string reason = "no PubAck";
  if (error != nullptr) {
    reason = error->ErrText != nullptr && *error->ErrText != '\0'
                 ? std::string(error->ErrText)
                 : std::string(natsStatus_GetText(error->Err));
    if (error->Err == NATS_TIMEOUT) {
      reason = absl::StrCat("no PubAck within ",
                            absl::FormatDuration(options_.publish_timeout),
                            " (--nats_publish_timeout)");
    }
  }
  std::move(pending->done)(absl::UnavailableError(
      absl::StrCat("JetStream did not store the event: ", reason)));
}

void JetStreamEventStore::FailOverdue() {
  // cnats times out each publish after its MaxWait; this is the backstop
  // for one it never answers, so that no webhook waits forever.
  const absl::Time cutoff =
      absl::Now() - options_.publish_timeout - absl::Seconds(2);
  std::vector<Pending> overdue;
  {
    absl::MutexLock lock(&pending_mu_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.start < cutoff) {
        overdue.push_back(std::move(it->second));
        pending_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  if (overdue.empty()) return;
  {
    absl::MutexLock lock(&state_mu_);
    counters_.publish_failures_total += overdue.size();
  }
  for (Pending& pending : overdue) {
    std::move(pending.done)(absl::UnavailableError(
        absl::StrCat("JetStream did not store the event: no PubAck within ",
                     absl::FormatDuration(options_.publish_timeout),
                     " (--nats_publish_timeout)")));
  }
}

absl::Status JetStreamEventStore::StartReading(hub::EventHub* hub) {
  if (hub == nullptr) return absl::InvalidArgumentError("no hub");
  std::uint64_t head;
  {
    absl::MutexLock lock(&state_mu_);
    head = head_;
  }
  {
    absl::MutexLock lock(&consumer_mu_);
    if (subscription_ != nullptr || consumer_stop_) {
      return absl::FailedPreconditionError(
          "the reader was already started, or the store is closed");
    }
    // The stream's leader can still be settling (a stream made a moment
    // ago, a cluster restarting): the consumer is retried as the stream
    // was, within --nats_start_timeout.
    const absl::Time deadline = absl::Now() + options_.start_timeout;
    while (true) {
      absl::Status started = ConsumeFrom(head + 1);
      if (started.ok()) break;
      if (!absl::IsUnavailable(started) ||
          absl::Now() + absl::Milliseconds(250) >= deadline) {
        return started;
      }
      absl::SleepFor(absl::Milliseconds(250));
    }
    reading_ = true;
  }
  read_thread_ = std::thread([this, hub] { ReadLoop(hub); });
  return absl::OkStatus();
}

absl::Status JetStreamEventStore::ConsumeFrom(std::uint64_t start_sequence) {
  if (subscription_ != nullptr) {
    natsSubscription_Unsubscribe(subscription_);
    natsSubscription_Destroy(subscription_);
    subscription_ = nullptr;
  }
  // Messages of the old consumer still queued are before start_sequence or
  // will come again; the hub skips what it has.
  const std::string all = absl::StrCat(options_.stream.subject_prefix, ".>");
  jsOptions api = ApiOptions(kApiWait);
  jsSubOptions sub;
  jsSubOptions_Init(&sub);
  sub.Stream = options_.stream.stream.c_str();
  // An ordered consumer: in stream order, no gaps, and cnats makes it again
  // by itself from the next sequence after a reconnect or a leader change.
  sub.Ordered = true;
  sub.Config.DeliverPolicy = js_DeliverByStartSequence;
  sub.Config.OptStartSeq = start_sequence;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus s = js_Subscribe(&subscription_, js_, all.c_str(),
                              &Callbacks::Message, this, &api, &sub, &js_error);
  if (s != NATS_OK) {
    subscription_ = nullptr;
    return NatsError(absl::StrCat("cannot read the JetStream stream ",
                                  options_.stream.stream),
                     s, js_error);
  }
  // The hub's fan-out, not cnats' queue, bounds what a slow subscriber
  // costs: the reader thread drains this queue at once.
  natsSubscription_SetPendingLimits(subscription_, -1, -1);
  return absl::OkStatus();
}

void JetStreamEventStore::HandleMessage(natsMsg* msg) {
  const std::uint64_t sequence = StreamSequenceOf(msg);
  if (sequence != 0) {
    Received received{sequence, std::string(PayloadOf(msg))};
    absl::MutexLock lock(&read_mu_);
    if (!read_stop_) received_.push_back(std::move(received));
  }
  natsMsg_Destroy(msg);
}

void JetStreamEventStore::ReadLoop(hub::EventHub* hub) {
  pthread_setname_np(pthread_self(), "js-reader");
  while (true) {
    std::vector<Received> batch;
    {
      absl::MutexLock lock(&read_mu_);
      read_mu_.Await(absl::Condition(this, &JetStreamEventStore::ReadWanted));
      if (read_stop_) return;
      const std::size_t n = std::min(received_.size(), kReadBatch);
      batch.reserve(n);
      for (std::size_t k = 0; k < n; ++k) {
        batch.push_back(std::move(received_.front()));
        received_.pop_front();
      }
    }
    std::vector<hub::StoredEvent> events;
    std::vector<hub::EventKey> keys;
    events.reserve(batch.size());
    keys.reserve(batch.size());
    std::uint64_t foreign = 0;
    for (Received& received : batch) {
      hub::EventKey key;
      bool is_foreign = false;
      events.push_back(StoredEventOf(received.sequence, received.payload, &key,
                                     &is_foreign));
      keys.push_back(std::move(key));
      if (is_foreign) ++foreign;
    }
    absl::Status replicated =
        hub->Replicate(std::move(events), std::move(keys));
    absl::MutexLock lock(&state_mu_);
    counters_.foreign_messages_total += foreign;
    if (!replicated.ok()) {
      reader_error_ = absl::InternalError(
          absl::StrCat("events read from JetStream cannot be streamed: ",
                       replicated.message()));
    }
  }
}

void JetStreamEventStore::CountConnectionEvent(bool reconnected) {
  absl::MutexLock lock(&state_mu_);
  if (reconnected) {
    ++counters_.reconnects_total;
  } else {
    ++counters_.disconnects_total;
    health_ = absl::UnavailableError("disconnected from every NATS server");
  }
}

void JetStreamEventStore::ProbeLoop() {
  pthread_setname_np(pthread_self(), "js-probe");
  std::uint64_t stalled_at = 0;
  absl::Time stalled_since = absl::InfiniteFuture();
  bool healthy = true;
  while (true) {
    {
      // Faster while unhealthy, so that readiness comes back soon after
      // JetStream does.
      const absl::Duration interval =
          healthy ? options_.probe_interval
                  : std::min(options_.probe_interval, absl::Milliseconds(250));
      absl::MutexLock lock(&probe_mu_);
      probe_mu_.AwaitWithTimeout(absl::Condition(&probe_stop_), interval);
      if (probe_stop_) return;
    }
    FailOverdue();
    absl::Status health;
    StreamState state;
    if (natsConnection_Status(connection_) != NATS_CONN_STATUS_CONNECTED) {
      health = absl::UnavailableError(
          absl::StrCat("not connected to any NATS server of ",
                       absl::StrJoin(options_.servers, ",")));
    } else {
      absl::StatusOr<StreamState> queried = QueryStream(kApiWait);
      if (!queried.ok()) {
        health = queried.status();
      } else if (!queried->no_quorum.empty()) {
        health = absl::UnavailableError(
            absl::StrCat("JetStream cannot store events in stream ",
                         options_.stream.stream, ": ", queried->no_quorum));
      } else {
        state = *queried;
      }
    }
    healthy = health.ok();
    std::uint64_t restart_from = 0;
    {
      absl::MutexLock lock(&state_mu_);
      health_ = health;
      if (!healthy) continue;
      stream_ = state;
      counters_.stream_last_sequence = state.last_sequence;
      // The ordered consumer remakes itself after faults cnats sees; this
      // catches the ones it does not (a consumer lost with its leader).
      if (state.last_sequence > head_) {
        if (head_ != stalled_at) {
          stalled_at = head_;
          stalled_since = absl::Now();
        } else if (absl::Now() - stalled_since > kReaderStall) {
          restart_from = head_ + 1;
          stalled_since = absl::Now();
        }
      } else {
        stalled_at = head_;
        stalled_since = absl::InfiniteFuture();
      }
    }
    absl::MutexLock lock(&consumer_mu_);
    if (consumer_stop_ || !reading_) continue;
    // A restart that failed (no leader to make the consumer on) left none:
    // try again at every healthy tick, not only after the next stall.
    if (subscription_ == nullptr && restart_from == 0) {
      absl::MutexLock state_lock(&state_mu_);
      restart_from = head_ + 1;
    }
    if (restart_from != 0 && ConsumeFrom(restart_from).ok()) {
      absl::MutexLock state_lock(&state_mu_);
      ++counters_.consumer_restarts_total;
    }
  }
}

absl::StatusOr<natsSubscription*> JetStreamEventStore::OpenReader(
    std::uint64_t from, absl::Time from_time) const {
  const std::string all = absl::StrCat(options_.stream.subject_prefix, ".>");
  jsOptions api = ApiOptions(kApiWait);
  jsSubOptions sub;
  jsSubOptions_Init(&sub);
  sub.Stream = options_.stream.stream.c_str();
  if (from != 0) {
    sub.Config.DeliverPolicy = js_DeliverByStartSequence;
    sub.Config.OptStartSeq = from;
  } else {
    sub.Config.DeliverPolicy = js_DeliverByStartTime;
    sub.Config.OptStartTime = absl::ToUnixNanos(from_time);
  }
  // A short-lived consumer of this gateway alone: in memory, one replica,
  // no acks, gone soon if this process dies mid-read.
  sub.Config.AckPolicy = js_AckNone;
  sub.Config.MemoryStorage = true;
  sub.Config.Replicas = 1;
  sub.Config.InactiveThreshold = Nanos(absl::Seconds(30));
  natsSubscription* pull = nullptr;
  jsErrCode js_error = static_cast<jsErrCode>(0);
  natsStatus s =
      js_PullSubscribe(&pull, js_, all.c_str(), nullptr, &api, &sub, &js_error);
  if (s != NATS_OK) {
    return NatsError("cannot read retained events from JetStream", s, js_error);
  }
  return pull;
}

absl::StatusOr<std::vector<hub::StoredEvent>> JetStreamEventStore::ReadRange(
    std::uint64_t from, std::uint64_t through, std::size_t max) const {
  std::vector<hub::StoredEvent> events;
  if (from > through || max == 0) return events;
  absl::StatusOr<natsSubscription*> opened =
      OpenReader(from, absl::InfinitePast());
  if (!opened.ok()) return opened.status();
  natsSubscription* const pull = *opened;
  natsStatus s = NATS_OK;
  absl::Status failure;
  bool done = false;
  while (!done && events.size() < max) {
    jsFetchRequest request;
    jsFetchRequest_Init(&request);
    request.Batch = static_cast<int>(
        std::min<std::uint64_t>(max - events.size(), through - from + 1));
    request.Expires = Nanos(kApiWait);
    // What is there now; messages past `through` exist, so a short batch
    // means the rest was trimmed.
    request.NoWait = true;
    natsMsgList list{nullptr, 0};
    s = natsSubscription_FetchRequest(&list, pull, &request);
    if (s == NATS_TIMEOUT || s == NATS_NOT_FOUND) break;
    if (s != NATS_OK) {
      failure = NatsError("cannot read retained events from JetStream", s);
      break;
    }
    if (list.Count == 0) done = true;
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* msg = list.Msgs[i];
      const std::uint64_t sequence = StreamSequenceOf(msg);
      if (sequence == 0 || sequence > through) {
        done = true;
        break;
      }
      bool foreign = false;
      events.push_back(
          StoredEventOf(sequence, PayloadOf(msg), nullptr, &foreign));
      if (sequence == through) done = true;
    }
    natsMsgList_Destroy(&list);
  }
  natsSubscription_Unsubscribe(pull);
  natsSubscription_Destroy(pull);
  if (!failure.ok()) return failure;
  // Evidence of trimming the probe may not have seen: the hub compares the
  // first sequence with Stats() to tell a gap from a start that moved on.
  std::uint64_t first_seen = 0;
  if (!events.empty() && events.front().sequence > from) {
    first_seen = events.front().sequence;
  } else if (events.empty()) {
    if (absl::StatusOr<StreamState> state = QueryStream(kApiWait); state.ok()) {
      first_seen = state->messages > 0 ? state->first_sequence
                                       : state->last_sequence + 1;
    }
  }
  if (first_seen != 0) {
    absl::MutexLock lock(&state_mu_);
    first_seen_ = std::max(first_seen_, first_seen);
  }
  return events;
}

absl::Status JetStreamEventStore::Append(
    absl::Span<const hub::StoredEvent> batch) {
  if (batch.empty()) return absl::OkStatus();
  if (absl::Status kept = window_.Append(batch); !kept.ok()) return kept;
  absl::MutexLock lock(&state_mu_);
  head_ = batch.back().sequence;
  counters_.read_sequence = head_;
  reader_error_ = absl::OkStatus();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<hub::StoredEvent>> JetStreamEventStore::ReadAfter(
    std::uint64_t after_sequence, std::size_t max_events) const {
  std::uint64_t head;
  {
    absl::MutexLock lock(&state_mu_);
    head = head_;
  }
  if (after_sequence >= head || max_events == 0) {
    return std::vector<hub::StoredEvent>();
  }
  const hub::StoreStats window = window_.Stats();
  if (window.first_sequence != 0 &&
      after_sequence + 1 >= window.first_sequence) {
    return window_.ReadAfter(after_sequence, max_events);
  }
  // Older than the window: from JetStream, up to where the window starts,
  // never past what this gateway has fanned out (the hub's catch-up relies
  // on it).
  const std::uint64_t through =
      window.first_sequence != 0 ? window.first_sequence - 1 : head;
  return ReadRange(after_sequence + 1, through, max_events);
}

absl::StatusOr<std::uint64_t> JetStreamEventStore::FirstSequenceAtOrAfter(
    absl::Time time) const {
  std::uint64_t head;
  {
    absl::MutexLock lock(&state_mu_);
    head = head_;
  }
  // JetStream's own timestamps (when it stored each message) stand for the
  // receive times: they differ by the publish latency.
  absl::StatusOr<std::uint64_t> in_window =
      window_.FirstSequenceAtOrAfter(time);
  const hub::StoreStats window = window_.Stats();
  if (in_window.ok() && window.first_sequence != 0 &&
      *in_window > window.first_sequence) {
    return *in_window;
  }
  absl::StatusOr<natsSubscription*> opened = OpenReader(0, time);
  if (!opened.ok()) return opened.status();
  natsSubscription* const pull = *opened;
  jsFetchRequest request;
  jsFetchRequest_Init(&request);
  request.Batch = 1;
  request.Expires = Nanos(kApiWait);
  request.NoWait = true;
  natsMsgList list{nullptr, 0};
  natsStatus s = natsSubscription_FetchRequest(&list, pull, &request);
  std::uint64_t first = head + 1;
  if (s == NATS_OK && list.Count > 0) {
    first = std::min(first, StreamSequenceOf(list.Msgs[0]));
  }
  natsMsgList_Destroy(&list);
  natsSubscription_Unsubscribe(pull);
  natsSubscription_Destroy(pull);
  if (s != NATS_OK && s != NATS_TIMEOUT && s != NATS_NOT_FOUND) {
    return NatsError("cannot find events by time in JetStream", s);
  }
  return first;
}

hub::StoreStats JetStreamEventStore::Stats() const {
  const hub::StoreStats window = window_.Stats();
  absl::MutexLock lock(&state_mu_);
  std::uint64_t stream_first =
      stream_.messages > 0 ? stream_.first_sequence : 0;
  if (first_seen_ != 0) stream_first = std::max(stream_first, first_seen_);
  if (stream_first > head_) stream_first = 0;  // nothing retained up to head
  std::uint64_t first = stream_first;
  if (window.first_sequence != 0) {
    first = first == 0 ? window.first_sequence
                       : std::min(first, window.first_sequence);
  }
  hub::StoreStats stats;
  stats.first_sequence = first;
  stats.last_sequence = head_;
  stats.retained_events = stream_.messages;
  stats.retained_bytes = stream_.bytes;
  stats.trimmed_events_total = first != 0 ? first - 1 : head_;
  return stats;
}

absl::Status JetStreamEventStore::Health() const {
  absl::MutexLock lock(&state_mu_);
  return !reader_error_.ok() ? reader_error_ : health_;
}

absl::StatusOr<std::uint64_t> JetStreamEventStore::NewestSequence() const {
  absl::StatusOr<StreamState> state = QueryStream(kApiWait);
  if (!state.ok()) return state.status();
  absl::MutexLock lock(&state_mu_);
  return std::max(state->last_sequence, head_);
}

JetStreamCounters JetStreamEventStore::Counters() const {
  JetStreamCounters counters;
  {
    absl::MutexLock lock(&state_mu_);
    counters = counters_;
  }
  absl::MutexLock lock(&pending_mu_);
  counters.pending_publishes = pending_.size();
  return counters;
}

void JetStreamEventStore::Close() {
  absl::MutexLock close_lock(&close_mu_);
  if (close_done_) return;
  close_done_ = true;
  {
    absl::MutexLock lock(&probe_mu_);
    probe_stop_ = true;
  }
  if (probe_thread_.joinable()) probe_thread_.join();
  {
    absl::MutexLock lock(&consumer_mu_);
    consumer_stop_ = true;
    if (subscription_ != nullptr) {
      natsSubscription_Unsubscribe(subscription_);
      natsSubscription_Destroy(subscription_);
      subscription_ = nullptr;
    }
  }
  {
    absl::MutexLock lock(&read_mu_);
    read_stop_ = true;
    received_.clear();
  }
  if (read_thread_.joinable()) read_thread_.join();
  std::vector<Pending> abandoned;
  {
    absl::MutexLock lock(&retry_mu_);
    retry_stop_ = true;
  }
  if (retry_thread_.joinable()) retry_thread_.join();
  {
    absl::MutexLock lock(&retry_mu_);
    for (auto& [due, pending] : retries_)
      abandoned.push_back(std::move(pending));
    retries_.clear();
  }
  {
    absl::MutexLock lock(&pending_mu_);
    closed_ = true;
    for (auto& [msg, pending] : pending_)
      abandoned.push_back(std::move(pending));
    pending_.clear();
  }
  for (Pending& pending : abandoned) {
    std::move(pending.done)(absl::UnavailableError(
        "the gateway stopped before JetStream acknowledged the event"));
  }
  if (connection_ != nullptr) {
    natsConnection_Close(connection_);
    // The disconnect handler, queued before this one, has run by then. A
    // client that never reports it is left to its own devices after 5 s.
    connection_closed_.WaitForNotificationWithTimeout(absl::Seconds(5));
  }
}

}  // namespace convocore::jetstream

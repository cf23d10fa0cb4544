// Chooses the engine behind the durable store by measurement: appends
// batches of realistic (~500 B) events with one fsync per batch, the way the
// hub's group commit calls EventStore::Append, and prints appends/s and
// events/s for the store's segment log (services/store, what the gateway
// uses), SQLite (WAL, synchronous=FULL, what it used before) and, when built
// with it, RocksDB (WriteOptions.sync). Not a test: it prints figures.
//
// RocksDB is measured only when librocksdb-dev is installed at configure
// time (`apt-get install librocksdb-dev`); the gateway does not need it.
//
//   store_engine_bench [--dir=/path/on/the/real/disk] [--seconds=2]
//                      [--rounds=3]
#include <sqlite3.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "services/store/disk_event_store.h"

#ifdef STORE_BENCH_WITH_ROCKSDB
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#endif

ABSL_FLAG(
    std::string, dir,
    (std::filesystem::temp_directory_path() / "store_engine_bench").string(),
    "Scratch directory; put it on the disk to measure (not a tmpfs). "
    "Removed afterwards.");
ABSL_FLAG(double, seconds, 2, "Duration of each measurement.");
ABSL_FLAG(int, rounds, 3, "Rounds; the median is reported.");

namespace {

using Clock = std::chrono::steady_clock;

std::string RealisticEvent(std::uint64_t sequence, std::mt19937_64& rng) {
  // A serialized Event is mostly ids, a timestamp and a short payload; the
  // entropy matters for engines that compress.
  std::string bytes = "seq=" + std::to_string(sequence) + ";";
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.:\"{}";
  while (bytes.size() < 500) bytes.push_back(kAlphabet[rng() % 68]);
  return bytes;
}

[[maybe_unused]] std::string BigEndianKey(std::uint64_t sequence) {
  std::string key(8, '\0');
  for (int i = 7; i >= 0; --i) {
    key[i] = static_cast<char>(sequence & 0xff);
    sequence >>= 8;
  }
  return key;
}

struct Rate {
  double appends_per_second = 0;
  // Process CPU (user + system) per appended event: on a machine whose cores
  // are busy with the rest of the gateway, this is what an engine costs.
  double cpu_us_per_event = 0;
};

double ProcessCpuMicros() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 +
         usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
}

// Runs `append_batch(first_sequence)` until `seconds` have passed.
Rate Measure(std::string_view engine, int batch_size, double seconds,
             const std::function<bool(std::uint64_t)>& append_batch) {
  std::uint64_t next = 1;
  std::uint64_t batches = 0;
  const double cpu_start = ProcessCpuMicros();
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    if (!append_batch(next)) {
      std::fprintf(stderr, "%.*s: append failed\n",
                   static_cast<int>(engine.size()), engine.data());
      std::exit(1);
    }
    next += batch_size;
    ++batches;
  }
  const double elapsed =
      std::chrono::duration<double>(Clock::now() - start).count();
  return Rate{
      .appends_per_second = batches / elapsed,
      .cpu_us_per_event = (ProcessCpuMicros() - cpu_start) /
                          static_cast<double>(batches * batch_size),
  };
}

bool Exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::fprintf(stderr, "sqlite: %s: %s\n", sql, error ? error : "?");
    sqlite3_free(error);
    return false;
  }
  return true;
}

Rate BenchSqlite(const std::filesystem::path& dir, int batch_size,
                 double seconds) {
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  sqlite3* db = nullptr;
  if (sqlite3_open((dir / "events.db").c_str(), &db) != SQLITE_OK) {
    std::fprintf(stderr, "sqlite open failed\n");
    std::exit(1);
  }
  if (!Exec(db, "PRAGMA journal_mode=WAL") ||
      !Exec(db, "PRAGMA synchronous=FULL") ||
      !Exec(db,
            "CREATE TABLE events (sequence INTEGER PRIMARY KEY, "
            "receive_time_us INTEGER NOT NULL, id TEXT NOT NULL, "
            "event BLOB NOT NULL)")) {
    std::exit(1);
  }
  sqlite3_stmt* insert = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO events VALUES (?, ?, ?, ?)", -1, &insert,
                     nullptr);
  std::mt19937_64 rng(42);
  const Rate rate =
      Measure("sqlite", batch_size, seconds, [&](std::uint64_t first) {
        if (!Exec(db, "BEGIN")) return false;
        for (int i = 0; i < batch_size; ++i) {
          const std::uint64_t sequence = first + i;
          const std::string event = RealisticEvent(sequence, rng);
          const std::string id = "evt_" + std::to_string(sequence);
          sqlite3_bind_int64(insert, 1, static_cast<sqlite3_int64>(sequence));
          sqlite3_bind_int64(insert, 2, 1'700'000'000'000'000);
          sqlite3_bind_text(insert, 3, id.data(), static_cast<int>(id.size()),
                            SQLITE_TRANSIENT);
          sqlite3_bind_blob(insert, 4, event.data(),
                            static_cast<int>(event.size()), SQLITE_TRANSIENT);
          if (sqlite3_step(insert) != SQLITE_DONE) return false;
          sqlite3_reset(insert);
        }
        return Exec(db, "COMMIT");
      });
  sqlite3_finalize(insert);
  sqlite3_close(db);
  std::filesystem::remove_all(dir);
  return rate;
}

Rate BenchSegmentLog(const std::filesystem::path& dir, int batch_size,
                     double seconds) {
  std::filesystem::remove_all(dir);
  convocore::store::DiskStoreOptions options;
  options.data_dir = dir.string();
  options.retention = {};  // keep everything, as the other engines do
  auto store = convocore::store::DiskEventStore::Open(options);
  if (!store.ok()) {
    std::fprintf(stderr, "segment log open failed: %s\n",
                 store.status().ToString().c_str());
    std::exit(1);
  }
  std::mt19937_64 rng(42);
  std::vector<convocore::hub::StoredEvent> batch(batch_size);
  const Rate rate =
      Measure("segments", batch_size, seconds, [&](std::uint64_t first) {
        for (int i = 0; i < batch_size; ++i) {
          const std::uint64_t sequence = first + i;
          batch[i] = convocore::hub::StoredEvent{
              .sequence = sequence,
              .receive_time = absl::Now(),
              .id = "evt_" + std::to_string(sequence),
              .event_bytes = std::make_shared<const std::string>(
                  RealisticEvent(sequence, rng)),
          };
        }
        return (*store)->Append(batch).ok();
      });
  store->reset();
  std::filesystem::remove_all(dir);
  return rate;
}

#ifdef STORE_BENCH_WITH_ROCKSDB
Rate BenchRocksdb(const std::filesystem::path& dir, int batch_size,
                  double seconds) {
  std::filesystem::remove_all(dir);
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  if (!rocksdb::DB::Open(options, dir.string(), &raw).ok()) {
    std::fprintf(stderr, "rocksdb open failed\n");
    std::exit(1);
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  std::mt19937_64 rng(42);
  const Rate rate =
      Measure("rocksdb", batch_size, seconds, [&](std::uint64_t first) {
        rocksdb::WriteBatch batch;
        for (int i = 0; i < batch_size; ++i) {
          const std::uint64_t sequence = first + i;
          // The id and receive time would share the value with the event.
          batch.Put(BigEndianKey(sequence), "evt_" + std::to_string(sequence) +
                                                RealisticEvent(sequence, rng));
        }
        return db->Write(write_options, &batch).ok();
      });
  db.reset();
  std::filesystem::remove_all(dir);
  return rate;
}
#endif

}  // namespace

struct Engine {
  std::string_view name;
  Rate (*bench)(const std::filesystem::path&, int, double);
};

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::filesystem::path dir = absl::GetFlag(FLAGS_dir);
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const int rounds = std::max(1, absl::GetFlag(FLAGS_rounds));
  const std::vector<Engine> engines = {
      {"segments", &BenchSegmentLog},
      {"sqlite", &BenchSqlite},
#ifdef STORE_BENCH_WITH_ROCKSDB
      {"rocksdb", &BenchRocksdb},
#endif
  };
  const std::vector<int> batch_sizes = {1, 8, 64};
  std::printf("dir=%s, ~500 B events, one fsync per batch, %d rounds\n",
              dir.c_str(), rounds);
  // Rounds interleave the engines so that a noisy neighbour on a shared disk
  // hurts both alike; the median of the rounds is reported.
  std::map<std::pair<std::string_view, int>, std::vector<Rate>> rates;
  for (int round = 0; round < rounds; ++round) {
    for (const int batch_size : batch_sizes) {
      for (const Engine& engine : engines) {
        const Rate rate =
            engine.bench(dir / std::string(engine.name), batch_size, seconds);
        rates[{engine.name, batch_size}].push_back(rate);
        std::printf(
            "round %d %-8.*s batch=%-3d %9.0f appends/s %6.1f us CPU "
            "per event\n",
            round, static_cast<int>(engine.name.size()), engine.name.data(),
            batch_size, rate.appends_per_second, rate.cpu_us_per_event);
        std::fflush(stdout);
      }
    }
  }
  std::printf("median:\n");
  for (const int batch_size : batch_sizes) {
    for (const Engine& engine : engines) {
      std::vector<Rate>& r = rates[{engine.name, batch_size}];
      std::vector<double> appends;
      std::vector<double> cpu;
      for (const Rate& rate : r) {
        appends.push_back(rate.appends_per_second);
        cpu.push_back(rate.cpu_us_per_event);
      }
      std::sort(appends.begin(), appends.end());
      std::sort(cpu.begin(), cpu.end());
      const double median = appends[appends.size() / 2];
      std::printf(
          "%-8.*s batch=%-3d %9.0f appends/s %10.0f events/s %6.1f us CPU "
          "per event\n",
          static_cast<int>(engine.name.size()), engine.name.data(), batch_size,
          median, median * batch_size, cpu[cpu.size() / 2]);
    }
  }
  return 0;
}

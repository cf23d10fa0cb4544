// Makes Debian's absl::Mutex and absl::CondVar visible to ThreadSanitizer.
//
// Debian builds libabsl_synchronization without -fsanitize=thread, so the
// ABSL_TSAN_MUTEX_* annotations inside mutex.cc are compiled out: TSan sees
// neither the acquire nor the release of an absl::Mutex and reports every
// access guarded by one as a race. Linked into the executables of the TSan
// build only (GATEWAY_TSAN; the top-level CMakeLists.txt), this file defines
// the library's out-of-line locking members itself: each tells TSan what it
// does (the same annotations, with the same flags, as Abseil's own TSan
// build) and calls the library's definition, found with dlsym(RTLD_NEXT).
// The executable's definitions come first in symbol resolution, so the calls
// of gRPC's libraries (which lock absl::Mutex too) are annotated as well;
// the executables export them (-rdynamic) for that.
//
// The library's private parts this depends on are its exported symbol names
// (the Itanium mangling of these members in the inline namespace that
// Debian's options.h sets) and the semantics of 20220623, among them which
// members call which others through the PLT: checked below at build time,
// and when each symbol is resolved.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/config.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

#if !defined(ABSL_HAVE_THREAD_SANITIZER)
#error "absl_sync_annotations.cc belongs only in the ThreadSanitizer build"
#endif
#if !defined(ABSL_LTS_RELEASE_VERSION) || ABSL_LTS_RELEASE_VERSION != 20220623
#error "written against Abseil LTS 20220623 (Debian 12): check mutex.cc"
#endif
#if !ABSL_OPTION_USE_INLINE_NAMESPACE
#error "expects Abseil's inline namespace (Debian: absl::debian3)"
#endif

namespace {

// The mangled name of absl::<inline namespace>::<rest>.
std::string AbslSymbol(const char* rest) {
  const std::string ns =
      ABSL_INTERNAL_TOKEN_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  return "_ZN4absl" + std::to_string(ns.size()) + ns + rest;
}

// The library's definition of the member named by `rest`; aborts when it is
// missing, since the program would otherwise call itself.
template <typename Fn>
Fn Real(const char* rest) {
  const std::string name = AbslSymbol(rest);
  void* fn = dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "absl_sync_annotations: %s not found: %s\n",
                 name.c_str(), dlerror());
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

// Resolved once, on first use (static initialisers of other libraries may
// lock before ours run).
#define REAL_DEFINITION(type, rest) \
  static const auto real = Real<type>(rest);

using absl::Condition;
using absl::CondVar;
using absl::Mutex;

constexpr unsigned kRead = __tsan_mutex_read_lock;
constexpr unsigned kTry = __tsan_mutex_try_lock;
constexpr unsigned kTryFailed = __tsan_mutex_try_lock_failed;

void PreLock(Mutex* mu, unsigned flags) { __tsan_mutex_pre_lock(mu, flags); }
void PostLock(Mutex* mu, unsigned flags) {
  __tsan_mutex_post_lock(mu, flags, 0);
}
void PreUnlock(Mutex* mu, unsigned flags) {
  __tsan_mutex_pre_unlock(mu, flags);
}
void PostUnlock(Mutex* mu, unsigned flags) {
  __tsan_mutex_post_unlock(mu, flags);
}

// Await and CondVar::Wait release the mutex while they wait and hold it again
// when they return: TSan is told of the release before the library's call
// and of the acquisition after it, and ignores the accesses in between (the
// condition, evaluated by the library at any point of the wait).
template <typename Call>
auto Released(Mutex* mu, Call call) {
  PreUnlock(mu, 0);
  auto result = call();
  PostUnlock(mu, 0);
  PreLock(mu, 0);
  PostLock(mu, 0);
  return result;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

Mutex::~Mutex() {
  REAL_DEFINITION(void (*)(Mutex*), "5MutexD2Ev");
  __tsan_mutex_destroy(this, __tsan_mutex_not_static);
  real(this);
}

void Mutex::Lock() {
  REAL_DEFINITION(void (*)(Mutex*), "5Mutex4LockEv");
  PreLock(this, 0);
  real(this);
  PostLock(this, 0);
}

void Mutex::ReaderLock() {
  REAL_DEFINITION(void (*)(Mutex*), "5Mutex10ReaderLockEv");
  PreLock(this, kRead);
  real(this);
  PostLock(this, kRead);
}

bool Mutex::TryLock() {
  REAL_DEFINITION(bool (*)(Mutex*), "5Mutex7TryLockEv");
  PreLock(this, kTry);
  const bool locked = real(this);
  PostLock(this, kTry | (locked ? 0 : kTryFailed));
  return locked;
}

bool Mutex::ReaderTryLock() {
  REAL_DEFINITION(bool (*)(Mutex*), "5Mutex13ReaderTryLockEv");
  PreLock(this, kRead | kTry);
  const bool locked = real(this);
  PostLock(this, kRead | kTry | (locked ? 0 : kTryFailed));
  return locked;
}

void Mutex::Unlock() {
  REAL_DEFINITION(void (*)(Mutex*), "5Mutex6UnlockEv");
  PreUnlock(this, 0);
  real(this);
  PostUnlock(this, 0);
}

void Mutex::ReaderUnlock() {
  REAL_DEFINITION(void (*)(Mutex*), "5Mutex12ReaderUnlockEv");
  PreUnlock(this, kRead);
  real(this);
  PostUnlock(this, kRead);
}

// The condition may be evaluated by whichever thread unlocks; TSan ignores
// the accesses between a pre- and a post- annotation, as in Abseil's own
// build.
void Mutex::LockWhen(const Condition& cond) {
  REAL_DEFINITION(void (*)(Mutex*, const Condition&),
                 "5Mutex8LockWhenERKNS0_9ConditionE");
  PreLock(this, 0);
  real(this, cond);
  PostLock(this, 0);
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  REAL_DEFINITION(void (*)(Mutex*, const Condition&),
                 "5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  PreLock(this, kRead);
  real(this, cond);
  PostLock(this, kRead);
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  REAL_DEFINITION(bool (*)(Mutex*, const Condition&, Time),
                 "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  PreLock(this, 0);
  const bool met = real(this, cond, deadline);
  PostLock(this, 0);
  return met;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  REAL_DEFINITION(
      bool (*)(Mutex*, const Condition&, Time),
      "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  PreLock(this, kRead);
  const bool met = real(this, cond, deadline);
  PostLock(this, kRead);
  return met;
}

// Await() is called with the mutex held; TSan is told of the exclusive
// mode, which orders at least as much as the reader mode.
void Mutex::Await(const Condition& cond) {
  REAL_DEFINITION(void (*)(Mutex*, const Condition&),
                 "5Mutex5AwaitERKNS0_9ConditionE");
  Released(this, [&] {
    real(this, cond);
    return true;
  });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  REAL_DEFINITION(bool (*)(Mutex*, const Condition&, Time),
                 "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Released(this, [&] { return real(this, cond, deadline); });
}

void CondVar::Wait(Mutex* mu) {
  REAL_DEFINITION(void (*)(CondVar*, Mutex*), "7CondVar4WaitEPNS0_5MutexE");
  Released(mu, [&] {
    real(this, mu);
    return true;
  });
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  REAL_DEFINITION(bool (*)(CondVar*, Mutex*, Time),
                 "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  return Released(mu, [&] { return real(this, mu, deadline); });
}

// The *WithTimeout members: the library's versions call their *WithDeadline
// counterparts through the PLT, which would reach the definitions above and
// be annotated twice; so they are defined here, as the library does, with
// the deadline the time now plus the timeout.
bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  return LockWhenWithDeadline(cond, Now() + timeout);
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond,
                                      Duration timeout) {
  return ReaderLockWhenWithDeadline(cond, Now() + timeout);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  return AwaitWithDeadline(cond, Now() + timeout);
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  return WaitWithDeadline(mu, Now() + timeout);
}

ABSL_NAMESPACE_END
}  // namespace absl

// Host emulation of the CUDA subset arraysparse's kernels use, for g++ (C++20).
//
// The .cu sources are compiled unchanged with this header force-included
// (-include shim.h), after the builder has rewritten each ``__shared__``
// declaration into a call of emu::shared (see below). A launch runs the grid's
// blocks one after another; the threads of a block are OS threads, each looping
// over the blocks, so that:
//
// * every block is a fresh emu::Block (its barriers, warps and shared memory);
//   OS thread t runs thread (t + b) % threads of the b-th block, so that the same
//   threadIdx of two blocks is two OS threads (a race between blocks is one);
// * __syncthreads() is a barrier of the block's threads; each __shared__ variable
//   is its own heap allocation of exactly its size, made when the block first
//   reaches its declaration, filled with a junk byte (a read of shared memory the
//   block never wrote gives garbage, as on a GPU) and freed with the block;
// * threadIdx / blockIdx / blockDim / gridDim are thread-locals;
// * a warp is 32 consecutive threads of the block with its own barriers and a
//   32-slot exchange: shuffles, ballots and votes write their lane's slot,
//   meet, read, and meet again (every lane must take part: the kernels only use
//   full-warp masks, as sm_70+ requires of them); __syncwarp() is a barrier;
// * atomics are std::atomic_ref on the same memory.
//
// Barriers time out (ASP_EMU_TIMEOUT_S, default 120 s) instead of hanging: a
// __syncthreads() or warp collective that not every thread reaches is a
// bug the emulation reports as an error of the launch. Blocks must be whole
// warps (a multiple of 32 threads), which the kernels' launch plans keep.
//
// Under the sanitizers (emulate/__init__.py's ARRAYSPARSE_CUDA_EMULATION_SANITIZE):
// AddressSanitizer sees shared memory as its exact allocations and the launch's
// arrays as exact copies (the launcher's side). ThreadSanitizer sees what orders
// memory in CUDA, __syncthreads() and __syncwarp(), as the mutex / condition variable
// hand-overs they are, but neither the meetings of shuffles and votes nor the step
// from one block to the next (relaxed atomics, fences and a futex, none of which it
// models), and it is told to forget each block's own memory: shared memory read
// before the barrier that orders its write, a missing __syncwarp, and two blocks
// touching the same global word without atomics are races, as on a GPU.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_THREAD__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#endif

#define ARRAYSPARSE_EMULATE 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict
// the builder rewrites `__shared__ T name[N];` into `auto& name = ::emu::shared<T[N], id>();`
#define __shared__ ASP_EMU_SHARED_DECLARATION_NOT_REWRITTEN_BY_THE_BUILDER
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
constexpr int warpSize = 32;

namespace emu {

struct Broken : std::exception {
  const char* what() const noexcept override { return "another thread of the launch failed"; }
};

struct Stalled : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::chrono::seconds timeout() {
  const char* s = std::getenv("ASP_EMU_TIMEOUT_S");
  return std::chrono::seconds(s ? std::atoi(s) : 120);
}

// What ThreadSanitizer must not see: the emulation's own bookkeeping between blocks
// (allocations made under it start with no history, so a fresh block's memory is new
// memory to it, and its locks order nothing). Elsewhere a no-op.
#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_ignore_thread_begin(void);
extern "C" void __tsan_ignore_thread_end(void);
extern "C" void AnnotateIgnoreSyncBegin(const char* file, int line);
extern "C" void AnnotateIgnoreSyncEnd(const char* file, int line);
struct Unseen {
  Unseen() {
    AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
    __tsan_ignore_thread_begin();
  }
  ~Unseen() {
    __tsan_ignore_thread_end();
    AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
  }
  Unseen(const Unseen&) = delete;
  Unseen& operator=(const Unseen&) = delete;
};
#else
struct Unseen {};
#endif

// A reusable barrier that can be broken (every waiter then throws Broken) and that
// reports a wait past the timeout as a stall instead of hanging. The last thread to
// arrive runs `last` before it releases the others.
class Barrier {
 public:
  explicit Barrier(unsigned count, const char* what) : count_(count), what_(what) {}

  void wait() {
    wait([] {});
  }

  template <class F>
  void wait(F&& last) {
    std::unique_lock<std::mutex> lock(mu_);
    if (broken_) throw Broken();
    const unsigned long long gen = gen_;
    if (++waiting_ == count_) {
      last();
      waiting_ = 0;
      ++gen_;
      cv_.notify_all();
      return;
    }
    if (!cv_.wait_for(lock, timeout(), [&] { return gen_ != gen || broken_; })) {
      throw Stalled(std::string(what_) + ": not every thread arrived (a return before it, or divergence)");
    }
    if (gen_ == gen) throw Broken();
  }

  void breakdown() {
    std::lock_guard<std::mutex> lock(mu_);
    broken_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  unsigned count_;
  unsigned waiting_ = 0;
  unsigned long long gen_ = 0;
  bool broken_ = false;
  const char* what_;
};

#if defined(__SANITIZE_THREAD__)
// The step from one block to the next under ThreadSanitizer: the same barrier, built of
// relaxed atomics, fences and a futex, which order the threads for real (fence to fence)
// but are no synchronisation to ThreadSanitizer (it models neither fences nor futexes).
// So nothing one block did happens-before the next block to it, as on a GPU.
class QuietBarrier {
 public:
  explicit QuietBarrier(unsigned count, const char* what) : count_(count), what_(what) {}

  void wait() {
    wait([] {});
  }

  template <class F>
  void wait(F&& last) {
    if (broken_.load(std::memory_order_relaxed)) throw Broken();
    const unsigned gen = gen_.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    if (arrived_.fetch_add(1, std::memory_order_relaxed) + 1 == count_) {
      std::atomic_thread_fence(std::memory_order_acquire);
      last();
      arrived_.store(0, std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_release);
      gen_.store(gen + 1, std::memory_order_relaxed);
      wake();
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + timeout();
    while (gen_.load(std::memory_order_relaxed) == gen) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) {
        throw Stalled(std::string(what_) + ": not every thread arrived (a return before it, or divergence)");
      }
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      struct timespec ts;
      ts.tv_sec = static_cast<time_t>(ns / 1000000000);
      ts.tv_nsec = static_cast<long>(ns % 1000000000);
      syscall(SYS_futex, word(), FUTEX_WAIT_PRIVATE, gen, &ts, nullptr, 0);
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (broken_.load(std::memory_order_relaxed)) throw Broken();
  }

  void breakdown() {
    broken_.store(true, std::memory_order_relaxed);
    gen_.fetch_add(1, std::memory_order_relaxed);
    wake();
  }

 private:
  unsigned* word() { return reinterpret_cast<unsigned*>(&gen_); }
  void wake() { syscall(SYS_futex, word(), FUTEX_WAKE_PRIVATE, 0x7fffffff, nullptr, nullptr, 0); }

  static_assert(sizeof(std::atomic<unsigned>) == sizeof(unsigned), "a futex word");
  unsigned count_;
  const char* what_;
  std::atomic<unsigned> arrived_{0};
  std::atomic<unsigned> gen_{0};
  std::atomic<bool> broken_{false};
};
using BlockStep = QuietBarrier;
#else
using BlockStep = Barrier;
#endif

// A warp's lanes meet in two ways. __syncwarp() is a memory barrier among them (as in CUDA's
// memory model) and so a Barrier. Shuffles and votes exchange values but order no other memory
// (a lane's shared-memory write before a shuffle is not visible to another lane after it
// without __syncwarp): under ThreadSanitizer they meet at a QuietBarrier and move their values
// through relaxed atomic slots, so a missing __syncwarp is a race it reports.
struct Warp {
  Barrier meet{32, "__syncwarp"};
#if defined(__SANITIZE_THREAD__)
  QuietBarrier quiet{32, "warp collective"};
  void collective() {
    quiet.wait([] {});
  }
  void breakdown() {
    meet.breakdown();
    quiet.breakdown();
  }
#else
  void collective() { meet.wait(); }
  void breakdown() { meet.breakdown(); }
#endif
  std::atomic<unsigned long long> slot[32];
};

constexpr int kMaxShared = 64;         // __shared__ declarations in one source
constexpr unsigned char kJunk = 0xA5;  // fresh shared memory: what a read before any write finds

// One block of a launch: made fresh for every block, so that nothing of one block (its
// barriers' history, its warps' slots, its shared memory) is the next one's.
struct Block {
  Block(unsigned threads, unsigned long long serial_)
      : sync(threads, "__syncthreads"), warps(threads / 32), serial(serial_) {
    for (auto& w : warps) w = new Warp();
  }
  ~Block() {
    for (auto* w : warps) delete w;
    for (auto& s : shared) std::free(s.second);
  }
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;

  void breakdown() {
    sync.breakdown();
    for (auto* w : warps) w->breakdown();
  }

  // the block's allocation of __shared__ declaration `id`: exactly `size` bytes
  void* shared_memory(int id, std::size_t size, std::size_t align) {
    Unseen unseen;  // the lookup orders nothing; a new allocation has no history
    std::lock_guard<std::mutex> lock(shared_mu);
    for (auto& s : shared)
      if (s.first == id) return s.second;
    void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (size + align - 1) / align * align)
                                                 : std::malloc(size ? size : 1);
    if (!p) throw std::bad_alloc();
    std::memset(p, kJunk, size);
    shared.emplace_back(id, p);
    return p;
  }

  Barrier sync;
  std::vector<Warp*> warps;
  std::atomic<long long> tally{0};
  const unsigned long long serial;
  std::mutex shared_mu;
  std::vector<std::pair<int, void*>> shared;
};

inline thread_local Block* block = nullptr;
inline thread_local unsigned lane = 0;
inline thread_local Warp* warp = nullptr;
inline thread_local unsigned long long shared_serial = 0;  // the block shared_cache belongs to
inline thread_local void* shared_cache[kMaxShared];

// `__shared__ T name;` as the builder rewrites it: `auto& name = ::emu::shared<T, id>();`
template <class T, int ID, std::size_t ALIGN = alignof(T)>
inline T& shared() {
  static_assert(ID >= 0 && ID < kMaxShared, "too many __shared__ declarations in one source");
  static_assert(std::is_trivially_default_constructible_v<T> && std::is_trivially_destructible_v<T>,
                "__shared__ variables are plain data");
  if (shared_serial != block->serial) {
    std::fill(shared_cache, shared_cache + kMaxShared, nullptr);
    shared_serial = block->serial;
  }
  void*& p = shared_cache[ID];
  if (!p) p = block->shared_memory(ID, sizeof(T), ALIGN);
  return *static_cast<T*>(p);
}

template <class T>
inline unsigned long long to_slot(T v) {
  static_assert(sizeof(T) <= 8, "warp exchange of at most 8 bytes");
  unsigned long long s = 0;
  std::memcpy(&s, &v, sizeof(T));
  return s;
}

template <class T>
inline T from_slot(unsigned long long s) {
  T v;
  std::memcpy(&v, &s, sizeof(T));
  return v;
}

// every lane offers `v`, then reads the value of lane `src(lane)`
template <class T, class F>
inline T exchange(T v, F src) {
  warp->slot[lane].store(to_slot(v), std::memory_order_relaxed);
  warp->collective();
  const unsigned from = src(lane);
  const T r = from_slot<T>(warp->slot[from].load(std::memory_order_relaxed));
  warp->collective();
  return r;
}

inline void check_mask(unsigned mask) {
  if (mask != 0xffffffffu) throw std::runtime_error("the emulation supports full-warp masks only");
}

}  // namespace emu

// -- synchronisation ----------------------------------------------------------------------
inline void __syncthreads() { emu::block->sync.wait(); }

inline int __syncthreads_count(int pred) {
  emu::Block* b = emu::block;
  if (pred) b->tally.fetch_add(1);
  b->sync.wait();
  const long long total = b->tally.load();
  b->sync.wait();
  if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) b->tally.store(0);
  b->sync.wait();
  return static_cast<int>(total);
}

inline int __syncthreads_or(int pred) { return __syncthreads_count(pred != 0) != 0; }

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  emu::check_mask(mask);
  emu::warp->meet.wait();
}

inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

[[noreturn]] inline void __trap() { throw std::runtime_error("__trap() called"); }

// -- warp votes and shuffles ----------------------------------------------------------------
inline unsigned __ballot_sync(unsigned mask, int pred) {
  emu::check_mask(mask);
  emu::warp->slot[emu::lane].store(pred ? 1 : 0, std::memory_order_relaxed);
  emu::warp->collective();
  unsigned r = 0;
  for (unsigned i = 0; i < 32; ++i) {
    r |= static_cast<unsigned>(emu::warp->slot[i].load(std::memory_order_relaxed) != 0) << i;
  }
  emu::warp->collective();
  return r;
}

inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == 0xffffffffu; }

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  emu::check_mask(mask);
  return emu::exchange(v, [&](unsigned l) { return (l / width) * width + static_cast<unsigned>(src) % width; });
}

template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  emu::check_mask(mask);
  return emu::exchange(v, [&](unsigned l) { return (l % width) >= delta ? l - delta : l; });
}

template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  emu::check_mask(mask);
  return emu::exchange(v, [&](unsigned l) { return (l % width) + delta < static_cast<unsigned>(width) ? l + delta : l; });
}

template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  emu::check_mask(mask);
  return emu::exchange(v, [&](unsigned l) {
    const unsigned s = l ^ static_cast<unsigned>(lane_mask);
    return (s / width) == (l / width) ? s : l;
  });
}

// -- atomics: CUDA's overload set ------------------------------------------------------------
// Relaxed, as CUDA's are: an atomic is indivisible but orders no other memory (no kernel may
// lean on one for that, and under ThreadSanitizer none hides a race that way).
#define ASP_EMU_ATOMIC_RMW(NAME, OP, T) \
  inline T NAME(T* p, T v) { return std::atomic_ref<T>(*p).OP(v, std::memory_order_relaxed); }
ASP_EMU_ATOMIC_RMW(atomicAdd, fetch_add, int)
ASP_EMU_ATOMIC_RMW(atomicAdd, fetch_add, unsigned int)
ASP_EMU_ATOMIC_RMW(atomicAdd, fetch_add, unsigned long long)
ASP_EMU_ATOMIC_RMW(atomicAdd, fetch_add, float)
ASP_EMU_ATOMIC_RMW(atomicAdd, fetch_add, double)
ASP_EMU_ATOMIC_RMW(atomicSub, fetch_sub, int)
ASP_EMU_ATOMIC_RMW(atomicSub, fetch_sub, unsigned int)
ASP_EMU_ATOMIC_RMW(atomicOr, fetch_or, int)
ASP_EMU_ATOMIC_RMW(atomicOr, fetch_or, unsigned int)
ASP_EMU_ATOMIC_RMW(atomicOr, fetch_or, unsigned long long)
ASP_EMU_ATOMIC_RMW(atomicAnd, fetch_and, int)
ASP_EMU_ATOMIC_RMW(atomicAnd, fetch_and, unsigned int)
ASP_EMU_ATOMIC_RMW(atomicAnd, fetch_and, unsigned long long)
ASP_EMU_ATOMIC_RMW(atomicXor, fetch_xor, unsigned int)
ASP_EMU_ATOMIC_RMW(atomicExch, exchange, int)
ASP_EMU_ATOMIC_RMW(atomicExch, exchange, unsigned int)
ASP_EMU_ATOMIC_RMW(atomicExch, exchange, unsigned long long)
#undef ASP_EMU_ATOMIC_RMW

#define ASP_EMU_ATOMIC_MINMAX(NAME, CMP, T)                         \
  inline T NAME(T* p, T v) {                                         \
    std::atomic_ref<T> a(*p);                                        \
    T old = a.load(std::memory_order_relaxed);                       \
    while (CMP(v, old) && !a.compare_exchange_weak(old, v, std::memory_order_relaxed)) { \
    }                                                                \
    return old;                                                      \
  }
#define ASP_EMU_LESS(a, b) ((a) < (b))
#define ASP_EMU_MORE(a, b) ((a) > (b))
ASP_EMU_ATOMIC_MINMAX(atomicMin, ASP_EMU_LESS, int)
ASP_EMU_ATOMIC_MINMAX(atomicMin, ASP_EMU_LESS, unsigned int)
ASP_EMU_ATOMIC_MINMAX(atomicMin, ASP_EMU_LESS, long long)
ASP_EMU_ATOMIC_MINMAX(atomicMin, ASP_EMU_LESS, unsigned long long)
ASP_EMU_ATOMIC_MINMAX(atomicMax, ASP_EMU_MORE, int)
ASP_EMU_ATOMIC_MINMAX(atomicMax, ASP_EMU_MORE, unsigned int)
ASP_EMU_ATOMIC_MINMAX(atomicMax, ASP_EMU_MORE, long long)
ASP_EMU_ATOMIC_MINMAX(atomicMax, ASP_EMU_MORE, unsigned long long)
#undef ASP_EMU_ATOMIC_MINMAX
#undef ASP_EMU_LESS
#undef ASP_EMU_MORE

inline int atomicCAS(int* p, int expected, int v) {
  std::atomic_ref<int>(*p).compare_exchange_strong(expected, v, std::memory_order_relaxed);
  return expected;
}
inline unsigned int atomicCAS(unsigned int* p, unsigned int expected, unsigned int v) {
  std::atomic_ref<unsigned int>(*p).compare_exchange_strong(expected, v, std::memory_order_relaxed);
  return expected;
}
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long expected, unsigned long long v) {
  std::atomic_ref<unsigned long long>(*p).compare_exchange_strong(expected, v, std::memory_order_relaxed);
  return expected;
}

// -- integer intrinsics ---------------------------------------------------------------------
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __brev(unsigned int x) {
  unsigned int r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
template <class T>
inline T __ldg(const T* p) {
  return *p;
}

// -- launching --------------------------------------------------------------------------------
namespace emu {

template <class A>
inline A read_arg(void* p) {
  A v;
  std::memcpy(&v, p, sizeof(A));
  return v;
}

template <class... A, std::size_t... I>
inline std::tuple<A...> read_args(void** args, std::index_sequence<I...>) {
  return std::tuple<A...>(read_arg<A>(args[I])...);
}

template <class A>
inline void describe_arg(int* is_pointer, int* size) {
  if constexpr (std::is_pointer_v<A>) {
    using P = std::remove_cv_t<std::remove_pointer_t<A>>;
    *is_pointer = std::is_const_v<std::remove_pointer_t<A>> ? 2 : 1;  // 2: the kernel only reads it
    if constexpr (std::is_void_v<P>) {
      *size = 0;
    } else {
      *size = static_cast<int>(sizeof(P));
    }
  } else {
    *is_pointer = 0;
    *size = static_cast<int>(sizeof(A));
  }
}

// the kernel's parameter list: count, then pointer flags (0 a value, 1 a pointer, 2 a pointer to const)
// and item sizes (pointee size for pointers)
template <class... A>
inline int describe(void (*)(A...), int* is_pointer, int* size) {
  int i = 0;
  ((describe_arg<A>(is_pointer + i, size + i), ++i), ...);
  return static_cast<int>(sizeof...(A));
}

inline std::mutex launch_lock;  // one launch at a time
inline std::atomic<unsigned long long> block_serial{0};  // every block of every launch: its own number

// Run kernel `f` on a grid, its arguments read from `args` (one pointer to each value).
// Returns 0, or 1 with a message in `err`.
template <class... A>
inline int launch(void (*f)(A...), unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                  void** args, char* err, int errlen) {
  std::lock_guard<std::mutex> guard(launch_lock);
  const unsigned threads = bx * by * bz;
  auto fail = [&](const std::string& what) {
    std::snprintf(err, static_cast<size_t>(errlen), "%s", what.c_str());
    return 1;
  };
  if (threads == 0 || threads % 32 != 0 || threads > 1024) {
    return fail("block of " + std::to_string(threads) + " threads: the emulation needs whole warps, at most 1024");
  }
  const auto values = read_args<std::decay_t<A>...>(args, std::index_sequence_for<A...>{});
  auto fresh = [&] { return new Block(threads, block_serial.fetch_add(1, std::memory_order_relaxed) + 1); };
  // the current block; replaced by the last thread to finish a block, read by all after the step
  std::atomic<Block*> current{fresh()};
  BlockStep step(threads, "end of block");
  std::mutex first_error_lock;
  std::string first_error;
  auto body = [&](unsigned t) {
    blockDim = dim3(bx, by, bz);
    gridDim = dim3(gx, gy, gz);
    Block* blk = nullptr;
    try {
      unsigned long long b = 0;
      for (unsigned z = 0; z < gz; ++z)
        for (unsigned y = 0; y < gy; ++y)
          for (unsigned x = 0; x < gx; ++x, ++b) {
            blk = current.load(std::memory_order_relaxed);
            const unsigned i = static_cast<unsigned>((t + b) % threads);  // block b's thread i: OS thread t
            block = blk;
            lane = i % 32;
            warp = blk->warps[i / 32];
            threadIdx = uint3{i % bx, (i / bx) % by, i / (bx * by)};
            blockIdx = uint3{x, y, z};
            std::apply(f, values);
            step.wait([&] {  // every thread is done with blk: the next block starts afresh
              Unseen unseen;
              delete blk;
              blk = nullptr;
              current.store(fresh(), std::memory_order_relaxed);
            });
          }
    } catch (const Broken&) {
    } catch (const std::exception& e) {
      {
        std::lock_guard<std::mutex> l(first_error_lock);
        if (first_error.empty()) first_error = e.what();
      }
      if (blk) blk->breakdown();  // not freed: this thread never reached the step
      step.breakdown();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads);
  std::string start_error;
  try {
    for (unsigned t = 0; t < threads; ++t) pool.emplace_back(body, t);
  } catch (const std::exception& e) {
    start_error = std::string("could not start the block's threads: ") + e.what();
    current.load()->breakdown();
    step.breakdown();
  }
  for (auto& th : pool) th.join();
  {
    Unseen unseen;
    delete current.load();
  }
  if (!start_error.empty()) return fail(start_error);
  if (!first_error.empty()) return fail(first_error);
  return 0;
}

}  // namespace emu

#include <l04/core/fiber.hpp>

#include <boost/context/fiber.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>
#include <spdlog/spdlog.h>

#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <deque>
#include <exception>
#include <thread>
#include <unordered_map>

// Sanitizers must be told when a thread changes stacks (ASan: which stack
// is live, for its fake stacks and use-after-return; TSan: which fiber's
// happens-before history applies).
#if defined(__SANITIZE_ADDRESS__)
#define L04_FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define L04_FIBER_ASAN 1
#endif
#endif
// (In a TSan build this file itself is not instrumented and gets
// L04_FIBER_TSAN from lib/CMakeLists.txt: see there.)
#if defined(L04_FIBER_TSAN)
#elif defined(__SANITIZE_THREAD__)
#define L04_FIBER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define L04_FIBER_TSAN 1
#endif
#endif
#ifdef L04_FIBER_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef L04_FIBER_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace l04 {

namespace ctx = boost::context;

namespace {

Clock::duration real_now() { return SystemClock::instance().now(); }

// Milliseconds to wait for `left`, rounded up (a wait never ends early
// because of rounding), clamped to what poll() and epoll_wait() take.
int wait_ms(Clock::duration left) {
    if (left <= Clock::duration::zero()) return 0;
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    return static_cast<int>(std::min<std::int64_t>(ms, INT_MAX));
}

constexpr std::size_t k_no_timer = static_cast<std::size_t>(-1);
std::atomic<std::uint64_t> g_fiber_ids{0};

}  // namespace

struct Fiber {
    std::uint64_t id = 0;
    EventLoops::Loop* loop = nullptr;
    std::function<void()> fn;
    ctx::fiber self;    // the fiber while it is suspended
    ctx::fiber caller;  // the loop while the fiber runs
    std::uint64_t gen = 0;  // bumped by each wait that others may end by handle
    bool parked = false;
    bool waits_fd = false;
    std::uint32_t revents = 0;  // epoll events that ended an fd wait
    Clock::duration timer_at{};
    std::size_t heap_pos = k_no_timer;
    void* stack_bottom = nullptr;
    std::size_t stack_size = 0;
    void* tsan = nullptr;

    void yield();
};

struct EventLoops::Loop {
    int epfd = -1;
    int evfd = -1;
    std::size_t stack_bytes = 0;
    std::thread thread;
    std::unordered_map<std::uint64_t, std::unique_ptr<Fiber>> fibers;  // loop thread only
    std::deque<Fiber*> ready;
    std::vector<Fiber*> heap;  // timers, a binary heap on timer_at
    Fiber* current = nullptr;
    std::atomic<std::size_t> live{0};
    std::atomic<bool> stopping{false};
    // What other threads (and fibers of this loop) hand in.
    std::mutex in_mu;
    std::vector<std::function<void()>> in_spawns;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> in_wakes;
    // The loop thread's own stack, where fibers switch back to.
    const void* main_bottom = nullptr;
    std::size_t main_size = 0;
    void* tsan_main = nullptr;

    void run();
    void kick() const {
        const std::uint64_t one = 1;
        (void)!::write(evfd, &one, sizeof one);
    }
    void post_spawn(std::function<void()> fn);
    void post_wake(std::uint64_t id, std::uint64_t gen);
    bool start_fiber(std::function<void()> fn);
    void resume(Fiber* f);
    void wake(Fiber* f);
    void on_event(std::uint64_t id, std::uint32_t events);

    void heap_swap(std::size_t a, std::size_t b) {
        std::swap(heap[a], heap[b]);
        heap[a]->heap_pos = a;
        heap[b]->heap_pos = b;
    }
    void heap_up(std::size_t i) {
        while (i > 0) {
            const std::size_t p = (i - 1) / 2;
            if (heap[p]->timer_at <= heap[i]->timer_at) break;
            heap_swap(i, p);
            i = p;
        }
    }
    void heap_down(std::size_t i) {
        for (;;) {
            std::size_t m = i;
            const std::size_t l = 2 * i + 1, r = l + 1;
            if (l < heap.size() && heap[l]->timer_at < heap[m]->timer_at) m = l;
            if (r < heap.size() && heap[r]->timer_at < heap[m]->timer_at) m = r;
            if (m == i) break;
            heap_swap(i, m);
            i = m;
        }
    }
    void timer_add(Fiber* f, Clock::duration at) {
        f->timer_at = at;
        f->heap_pos = heap.size();
        heap.push_back(f);
        heap_up(f->heap_pos);
    }
    void timer_remove(Fiber* f) {
        const std::size_t i = f->heap_pos;
        if (i == k_no_timer) return;
        const std::size_t last = heap.size() - 1;
        if (i != last) heap_swap(i, last);
        heap.pop_back();
        f->heap_pos = k_no_timer;
        if (i < heap.size()) {
            heap_up(i);
            heap_down(i);
        }
    }
};

namespace {

thread_local EventLoops::Loop* t_loop = nullptr;
thread_local int t_blocking = 0;

// The running fiber, or null off a fiber or inside a BlockingScope.
Fiber* current_fiber() { return t_loop && t_blocking == 0 ? t_loop->current : nullptr; }

#ifdef L04_FIBER_ASAN
void asan_start(void** fake, const void* bottom, std::size_t size) { __sanitizer_start_switch_fiber(fake, bottom, size); }
void asan_finish(void* fake, const void** bottom, std::size_t* size) { __sanitizer_finish_switch_fiber(fake, bottom, size); }
#else
void asan_start(void**, const void*, std::size_t) {}
void asan_finish(void*, const void**, std::size_t*) {}
#endif
#ifdef L04_FIBER_TSAN
void* tsan_current() { return __tsan_get_current_fiber(); }
void* tsan_create() { return __tsan_create_fiber(0); }
void tsan_switch(void* f) { __tsan_switch_to_fiber(f, 0); }
void tsan_destroy(void* f) { __tsan_destroy_fiber(f); }
#else
void* tsan_current() { return nullptr; }
void* tsan_create() { return nullptr; }
void tsan_switch(void*) {}
void tsan_destroy(void*) {}
#endif

// Parks f until the loop wakes it (a handle, an fd event or its deadline).
void park(Fiber* f, std::optional<Clock::duration> deadline) {
    if (deadline) f->loop->timer_add(f, *deadline);
    f->parked = true;
    f->yield();
}

int poll_until(int fd, short events, std::optional<Clock::duration> deadline) {
    for (;;) {
        const int ms = deadline ? wait_ms(*deadline - real_now()) : -1;
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, ms);
        if (rc > 0) return p.revents;
        if (rc == 0) {
            if (deadline && real_now() >= *deadline) return 0;
            continue;
        }
        if (errno != EINTR) return -1;
    }
}

short poll_events(std::uint32_t e) {
    short out = 0;
    if (e & EPOLLIN) out |= POLLIN;
    if (e & EPOLLOUT) out |= POLLOUT;
    if (e & EPOLLERR) out |= POLLERR;
    if (e & EPOLLHUP) out |= POLLHUP;
    if (e & EPOLLRDHUP) out |= POLLRDHUP;
    if (e & EPOLLPRI) out |= POLLPRI;
    return out;
}

}  // namespace

void Fiber::yield() {
    void* fake = nullptr;
    asan_start(&fake, loop->main_bottom, loop->main_size);
    tsan_switch(loop->tsan_main);
    caller = std::move(caller).resume();
    asan_finish(fake, &loop->main_bottom, &loop->main_size);
}

void EventLoops::Loop::post_spawn(std::function<void()> fn) {
    {
        std::lock_guard lk(in_mu);
        in_spawns.push_back(std::move(fn));
    }
    if (t_loop != this) kick();
}

void EventLoops::Loop::post_wake(std::uint64_t id, std::uint64_t gen) {
    {
        std::lock_guard lk(in_mu);
        in_wakes.emplace_back(id, gen);
    }
    // The loop drains its inbox before it waits again: no kick from itself.
    if (t_loop != this) kick();
}

bool EventLoops::Loop::start_fiber(std::function<void()> fn) {
    auto f = std::make_unique<Fiber>();
    f->id = ++g_fiber_ids;
    f->loop = this;
    f->fn = std::move(fn);
    ctx::protected_fixedsize_stack alloc(stack_bytes);
    ctx::stack_context sc;
    try {
        sc = alloc.allocate();
    } catch (const std::exception& e) {
        spdlog::error("cannot start a fiber: {}", e.what());
        return false;
    }
    f->stack_bottom = static_cast<char*>(sc.sp) - sc.size;
    f->stack_size = sc.size;
    Fiber* raw = f.get();
    f->self = ctx::fiber(std::allocator_arg, ctx::preallocated(sc.sp, sc.size, sc), alloc,
                         [raw](ctx::fiber&& caller) {
                             raw->caller = std::move(caller);
                             Loop* loop = raw->loop;
                             asan_finish(nullptr, &loop->main_bottom, &loop->main_size);
                             try {
                                 raw->fn();
                             } catch (const ctx::detail::forced_unwind&) {
                                 throw;
                             } catch (const std::exception& e) {
                                 spdlog::error("a fiber ended with an exception: {}", e.what());
                             } catch (...) {
                                 spdlog::error("a fiber ended with an unknown exception");
                             }
                             raw->fn = nullptr;
                             // This stack is about to go: no fake stack to keep.
                             asan_start(nullptr, loop->main_bottom, loop->main_size);
                             tsan_switch(loop->tsan_main);
                             return std::move(raw->caller);
                         });
    f->tsan = tsan_create();
    fibers.emplace(raw->id, std::move(f));
    ready.push_back(raw);
    ++live;
    return true;
}

void EventLoops::Loop::resume(Fiber* f) {
    current = f;
    void* fake = nullptr;
    asan_start(&fake, f->stack_bottom, f->stack_size);
    tsan_switch(f->tsan);
    f->self = std::move(f->self).resume();
    asan_finish(fake, nullptr, nullptr);
    current = nullptr;
    if (!f->self) {
        // Finished (its stack is already unmapped).
        tsan_destroy(f->tsan);
        timer_remove(f);
        fibers.erase(f->id);
        --live;
    }
}

void EventLoops::Loop::wake(Fiber* f) {
    if (!f->parked) return;
    f->parked = false;
    timer_remove(f);
    ready.push_back(f);
}

void EventLoops::Loop::on_event(std::uint64_t id, std::uint32_t events) {
    auto it = fibers.find(id);
    if (it == fibers.end()) return;
    Fiber* f = it->second.get();
    if (!f->parked || !f->waits_fd) return;
    f->revents = events;
    wake(f);
}

void EventLoops::Loop::run() {
    t_loop = this;
    tsan_main = tsan_current();
    std::vector<std::function<void()>> spawns;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> wakes;
    epoll_event evs[128];
    for (;;) {
        {
            std::lock_guard lk(in_mu);
            spawns.swap(in_spawns);
            wakes.swap(in_wakes);
        }
        for (auto& fn : spawns) start_fiber(std::move(fn));
        spawns.clear();
        for (const auto& [id, gen] : wakes) {
            auto it = fibers.find(id);
            if (it != fibers.end() && it->second->gen == gen) wake(it->second.get());
        }
        wakes.clear();
        while (!ready.empty()) {
            Fiber* f = ready.front();
            ready.pop_front();
            resume(f);
        }
        bool pending;
        {
            std::lock_guard lk(in_mu);
            pending = !in_spawns.empty() || !in_wakes.empty();
        }
        if (pending) continue;
        if (stopping.load() && fibers.empty()) break;
        const int timeout = heap.empty() ? -1 : wait_ms(heap.front()->timer_at - real_now());
        const int n = ::epoll_wait(epfd, evs, static_cast<int>(std::size(evs)), timeout);
        for (int i = 0; i < n; ++i) {
            if (evs[i].data.u64 == 0) {
                std::uint64_t v;
                (void)!::read(evfd, &v, sizeof v);
                continue;
            }
            on_event(evs[i].data.u64, evs[i].events);
        }
        if (!heap.empty()) {
            const auto now = real_now();
            while (!heap.empty() && heap.front()->timer_at <= now) wake(heap.front());
        }
    }
    t_loop = nullptr;
}

// --- the free functions -----------------------------------------------------

bool on_fiber() { return current_fiber() != nullptr; }

BlockingScope::BlockingScope() { ++t_blocking; }
BlockingScope::~BlockingScope() { --t_blocking; }

int wait_fd(int fd, short events, std::optional<Clock::duration> deadline) {
    Fiber* f = current_fiber();
    if (!f || (deadline && *deadline <= real_now())) return poll_until(fd, events, deadline);
    EventLoops::Loop* loop = f->loop;
    epoll_event ev{};
    ev.events = EPOLLONESHOT;
    if (events & POLLIN) ev.events |= EPOLLIN | EPOLLRDHUP;
    if (events & POLLOUT) ev.events |= EPOLLOUT;
    ev.data.u64 = f->id;
    // One-shot: each wait arms the descriptor once (a MOD, or an ADD the
    // first time this loop sees it); the event disarms it.
    if (::epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) != 0) {
        if (errno != ENOENT) return errno == EPERM ? events : -1;  // EPERM: a regular file, always ready
        if (::epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) return errno == EPERM ? events : -1;
    }
    ++f->gen;
    f->waits_fd = true;
    f->revents = 0;
    park(f, deadline);
    f->waits_fd = false;
    if (f->revents == 0) {
        // The deadline came first: take the descriptor out of this loop's
        // set, so that no event of this wait reaches a later one.
        ::epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, nullptr);
        return 0;
    }
    return poll_events(f->revents);
}

void sleep_real(Clock::duration d) {
    Fiber* f = current_fiber();
    if (!f) {
        SystemClock::instance().sleep_for(d);
        return;
    }
    const auto until = real_now() + d;
    ++f->gen;
    while (real_now() < until) park(f, until);
}

namespace {

struct BlockingJob {
    const std::function<void()>* fn;
    std::exception_ptr error;
    std::mutex mu;
    bool done = false;  // guarded by mu
    EventLoops::Loop* loop;
    std::uint64_t fiber;
    std::uint64_t gen;
};

// Helper threads for run_blocking: one per job running at once, kept 30 s
// when idle. Never destroyed (a detached thread may still be leaving).
class BlockingPool {
public:
    static BlockingPool& instance() {
        static auto* pool = new BlockingPool;
        return *pool;
    }
    void submit(BlockingJob* job) {
        std::lock_guard lk(m_mu);
        m_jobs.push_back(job);
        if (m_jobs.size() > m_idle) {
            // Every idle thread has a job waiting for it already: one more.
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setstacksize(&attr, 1u << 20);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            pthread_t th;
            const bool ok = pthread_create(&th, &attr, &BlockingPool::thread_main, this) == 0;
            pthread_attr_destroy(&attr);
            if (!ok) spdlog::error("cannot start a helper thread; the job waits for a busy one");
        } else {
            m_cv.notify_one();
        }
    }

private:
    static void* thread_main(void* self) {
        static_cast<BlockingPool*>(self)->work();
        return nullptr;
    }
    void work() {
        std::unique_lock lk(m_mu);
        for (;;) {
            ++m_idle;
            const bool got = SystemClock::instance().wait_for(m_cv, lk, std::chrono::seconds(30),
                                                              [&] { return !m_jobs.empty(); });
            --m_idle;
            if (!got) return;
            BlockingJob* job = m_jobs.front();
            m_jobs.pop_front();
            lk.unlock();
            try {
                (*job->fn)();
            } catch (...) {
                job->error = std::current_exception();
            }
            {
                // Under the job's lock: the fiber reads `done` under it, so
                // it cannot see it, return and end its loop before this
                // wake is posted.
                std::lock_guard jl(job->mu);
                job->done = true;
                job->loop->post_wake(job->fiber, job->gen);
            }
            lk.lock();
        }
    }
    std::mutex m_mu;
    std::condition_variable m_cv;
    std::deque<BlockingJob*> m_jobs;
    std::size_t m_idle = 0;
};

}  // namespace

void run_blocking(const std::function<void()>& fn) {
    Fiber* f = current_fiber();
    if (!f) {
        fn();
        return;
    }
    BlockingJob job;
    job.fn = &fn;
    job.loop = f->loop;
    job.fiber = f->id;
    job.gen = ++f->gen;
    BlockingPool::instance().submit(&job);
    for (;;) {
        {
            std::lock_guard lk(job.mu);
            if (job.done) break;
        }
        park(f, std::nullopt);
    }
    if (job.error) std::rethrow_exception(job.error);
}

void Condition::notify_all() {
    m_cv.notify_all();
    std::lock_guard lk(m_mu);
    // Posted under m_mu: a waiter takes itself off the list under it too, so
    // no handle is used after its fiber moved on.
    for (const Handle& h : m_fibers) static_cast<EventLoops::Loop*>(h.loop)->post_wake(h.fiber, h.gen);
    m_fibers.clear();
}

void Condition::wait_fiber(std::unique_lock<std::mutex>& lk, std::optional<Clock::duration> deadline) {
    Fiber* f = current_fiber();
    if (!f) {
        // Not reached through Clock::wait; kept safe anyway.
        std::optional<Clock::duration> left;
        if (deadline) left = std::max(Clock::duration::zero(), *deadline - real_now());
        SystemClock::instance().wait(m_cv, lk, left);
        return;
    }
    const std::uint64_t gen = ++f->gen;
    {
        std::lock_guard g(m_mu);
        m_fibers.push_back({f->loop, f->id, gen});
    }
    lk.unlock();
    park(f, deadline);
    {
        std::lock_guard g(m_mu);
        std::erase_if(m_fibers, [&](const Handle& h) { return h.fiber == f->id && h.gen == gen; });
    }
    lk.lock();
}

// --- EventLoops -------------------------------------------------------------

EventLoops::EventLoops(Options opts) {
    std::size_t n = opts.threads ? opts.threads : std::max(1u, std::thread::hardware_concurrency());
    for (std::size_t i = 0; i < n; ++i) {
        auto loop = std::make_unique<Loop>();
        loop->stack_bytes = std::max<std::size_t>(opts.stack_bytes, 64u << 10);
        loop->epfd = ::epoll_create1(EPOLL_CLOEXEC);
        loop->evfd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (loop->epfd < 0 || loop->evfd < 0) {
            spdlog::error("event loop: cannot create epoll or eventfd descriptors");
            if (loop->epfd >= 0) ::close(loop->epfd);
            if (loop->evfd >= 0) ::close(loop->evfd);
            continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = 0;
        ::epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->evfd, &ev);
        Loop* raw = loop.get();
        loop->thread = std::thread([raw] { raw->run(); });
        m_loops.push_back(std::move(loop));
    }
}

EventLoops::~EventLoops() {
    for (auto& l : m_loops) {
        l->stopping = true;
        l->kick();
    }
    for (auto& l : m_loops) {
        if (l->thread.joinable()) l->thread.join();
        ::close(l->epfd);
        ::close(l->evfd);
    }
}

void EventLoops::spawn(std::function<void()> fn) {
    if (m_loops.empty()) {
        // No loop could be created: run it on a thread of its own, as before.
        std::thread(std::move(fn)).detach();
        return;
    }
    Loop* loop;
    {
        std::lock_guard lk(m_mu);
        loop = m_loops[m_next++ % m_loops.size()].get();
    }
    loop->post_spawn(std::move(fn));
}

std::size_t EventLoops::threads() const { return m_loops.size(); }

std::size_t EventLoops::fibers() const {
    std::size_t n = 0;
    for (const auto& l : m_loops) n += l->live.load();
    return n;
}

}  // namespace l04

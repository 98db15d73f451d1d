#include <l04/store/change_counter.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace l04 {

namespace {

constexpr std::size_t k_size = sizeof(std::uint64_t);
// Shared between processes through the mapping: only a lock-free atomic
// works there (a lock would live in this process's memory).
static_assert(std::atomic_ref<std::uint64_t>::is_always_lock_free);

std::atomic_ref<std::uint64_t> cell(void* map) { return std::atomic_ref<std::uint64_t>(*static_cast<std::uint64_t*>(map)); }

}  // namespace

ChangeCounter::ChangeCounter(const std::string& db_path) {
    if (db_path.empty() || db_path == ":memory:" || db_path.rfind("file:", 0) == 0) return;
    m_path = db_path + "-changes";
    const int fd = ::open(m_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        spdlog::debug("change counter {}: cannot open, using a per-process counter", m_path);
        return;
    }
    struct stat st {};
    // Another user's file could be changed under us at will: not trusted.
    const bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() &&
                    (static_cast<std::size_t>(st.st_size) >= k_size || ::ftruncate(fd, k_size) == 0);
    if (ok) {
        void* m = ::mmap(nullptr, k_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m != MAP_FAILED) m_map = m;
    }
    ::close(fd);
    if (!m_map) spdlog::debug("change counter {}: cannot map, using a per-process counter", m_path);
}

ChangeCounter::~ChangeCounter() {
    if (m_map) ::munmap(m_map, k_size);
}

std::uint64_t ChangeCounter::value() const {
    if (m_map) return cell(m_map).load(std::memory_order_acquire);
    return m_local.load(std::memory_order_acquire);
}

void ChangeCounter::bump() {
    if (m_map)
        cell(m_map).fetch_add(1, std::memory_order_acq_rel);
    else
        m_local.fetch_add(1, std::memory_order_acq_rel);
}

}  // namespace l04

#include <l04/cache/vector_index.hpp>
#include <l04/cache/half.hpp>
#include <l04/cache/embedder.hpp>

// hnswlib 0.6.2's SSE paths prefetch the neighbour after the last one of a
// link list: at an upper level that reads 4 bytes past the list's malloc
// block (ASan: heap-buffer-overflow). The distance function here is our own
// (HalfSpace), so without its manual vectorisation hnswlib loses only those
// prefetches (their effect on search time is not measured yet).
#define NO_MANUAL_VECTORIZATION
#include <hnswlib/hnswlib.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <queue>
#include <unordered_set>

namespace l04 {

namespace {

constexpr char k_magic[8] = {'L', '0', '4', 'H', 'N', 'S', 'W', '\0'};
constexpr std::uint32_t k_version = 2;  // 2: vectors stored as IEEE half (half.hpp)
constexpr std::size_t k_name_len = 64;
constexpr std::size_t k_header_size = 8 + 4 + 4 + k_name_len + 8 * 7;

std::uint64_t rotl(std::uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Streaming checksum over 8-byte little-endian words (the tail zero-padded,
// the length mixed in at the end). Each step is a bijection of the state and
// of the word, so any change confined to one word always changes the result.
class Checksum {
public:
    void update(const void* data, std::size_t n) {
        auto p = static_cast<const unsigned char*>(data);
        m_len += n;
        if (m_fill) {
            while (n && m_fill < 8) {
                m_tail[m_fill++] = *p++;
                --n;
            }
            if (m_fill < 8) return;
            word(load(m_tail));
            m_fill = 0;
        }
        for (; n >= 8; n -= 8, p += 8) word(load(p));
        while (n--) m_tail[m_fill++] = *p++;
    }
    std::uint64_t finish() {
        if (m_fill) {
            std::memset(m_tail + m_fill, 0, 8 - m_fill);
            word(load(m_tail));
            m_fill = 0;
        }
        word(m_len);
        std::uint64_t h = m_h;
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        return h;
    }

private:
    static std::uint64_t load(const unsigned char* p) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        return w;
    }
    void word(std::uint64_t w) {
        w *= 0x87c37b91114253d5ull;  // odd: a bijection
        w = rotl(w, 31);
        w *= 0x4cf5ad432745937full;
        m_h = rotl(m_h ^ w, 27) * 0x9E3779B97F4A7C15ull + 0x52dce729ull;
    }
    std::uint64_t m_h = 0x6a09e667f3bcc908ull;
    std::uint64_t m_len = 0;
    unsigned char m_tail[8]{};
    std::size_t m_fill = 0;
};

Error corrupt(const std::string& path, const std::string& why) {
    return Error(ErrorCode::cache_index_corrupt, "index file " + path + ": " + why);
}

struct Header {
    std::uint32_t version = k_version;
    std::uint32_t dim = 0;
    char embedder[k_name_len]{};
    std::uint64_t elements = 0, live = 0, m = 0, ef_construction = 0, payload_bytes = 0, payload_sum = 0,
                  header_sum = 0;

    void encode(unsigned char* out) const {
        unsigned char* p = out;
        auto put = [&](const void* v, std::size_t n) {
            std::memcpy(p, v, n);
            p += n;
        };
        put(k_magic, 8);
        put(&version, 4);
        put(&dim, 4);
        put(embedder, k_name_len);
        for (auto v : {elements, live, m, ef_construction, payload_bytes, payload_sum}) put(&v, 8);
        const std::uint64_t hs = index_checksum(out, static_cast<std::size_t>(p - out));
        put(&hs, 8);
    }
    // Fails unless the magic and the header checksum match.
    bool decode(const unsigned char* in) {
        if (std::memcmp(in, k_magic, 8) != 0) return false;
        const unsigned char* p = in + 8;
        auto get = [&](void* v, std::size_t n) {
            std::memcpy(v, p, n);
            p += n;
        };
        get(&version, 4);
        get(&dim, 4);
        get(embedder, k_name_len);
        for (auto* v : {&elements, &live, &m, &ef_construction, &payload_bytes, &payload_sum}) get(v, 8);
        const std::uint64_t expect = index_checksum(in, static_cast<std::size_t>(p - in));
        get(&header_sum, 8);
        return header_sum == expect;
    }
};

// Buffered writer over a file descriptor that checksums what it writes.
class Writer {
public:
    explicit Writer(int fd) : m_fd(fd) { m_buf.reserve(k_cap); }
    bool put(const void* data, std::size_t n) {
        m_sum.update(data, n);
        m_bytes += n;
        auto p = static_cast<const char*>(data);
        while (n) {
            const std::size_t take = std::min(n, k_cap - m_buf.size());
            m_buf.insert(m_buf.end(), p, p + take);
            p += take;
            n -= take;
            if (m_buf.size() == k_cap && !flush()) return false;
        }
        return true;
    }
    bool flush() {
        std::size_t off = 0;
        while (off < m_buf.size()) {
            const ssize_t w = ::write(m_fd, m_buf.data() + off, m_buf.size() - off);
            if (w < 0) {
                if (errno == EINTR) continue;
                return false;
            }
            off += static_cast<std::size_t>(w);
        }
        m_buf.clear();
        return true;
    }
    std::uint64_t checksum() { return m_sum.finish(); }
    std::uint64_t bytes() const { return m_bytes; }

private:
    static constexpr std::size_t k_cap = 1 << 20;
    int m_fd;
    std::vector<char> m_buf;
    Checksum m_sum;
    std::uint64_t m_bytes = 0;
};

// Reads exactly n bytes (hashing them). False on a short read or an error.
bool read_exact(int fd, void* dst, std::size_t n, Checksum& sum) {
    auto p = static_cast<char*>(dst);
    std::size_t done = 0;
    while (done < n) {
        const ssize_t r = ::read(fd, p + done, std::min<std::size_t>(n - done, 16u << 20));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        done += static_cast<std::size_t>(r);
    }
    sum.update(dst, n);
    return true;
}

class Fd {
public:
    explicit Fd(int fd) : m_fd(fd) {}
    ~Fd() {
        if (m_fd >= 0) ::close(m_fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return m_fd; }
    int release() {
        int f = m_fd;
        m_fd = -1;
        return f;
    }

private:
    int m_fd;
};

struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
};

}  // namespace

std::uint64_t index_checksum(const void* data, std::size_t n) {
    Checksum c;
    c.update(data, n);
    return c.finish();
}

namespace {

// Inner-product distance (1 - cosine of unit vectors) over half-precision
// vectors (half.hpp: F16C+AVX2 chosen at run time). hnswlib's own
// InnerProductSpace works on floats with a kernel chosen at compile time (a
// portable build gets only SSE); halves halve the memory a search touches.
class HalfSpace final : public hnswlib::SpaceInterface<float> {
public:
    explicit HalfSpace(std::size_t dim) : m_dim(dim) {}
    std::size_t get_data_size() override { return m_dim * sizeof(Half); }
    hnswlib::DISTFUNC<float> get_dist_func() override { return &distance; }
    void* get_dist_func_param() override { return &m_dim; }

private:
    static float distance(const void* a, const void* b, const void* dim) {
        return 1.0f - dot_half(static_cast<const Half*>(a), static_cast<const Half*>(b),
                               *static_cast<const std::size_t*>(dim));
    }
    std::size_t m_dim;
};

}  // namespace

struct VectorIndex::Graph {
    HalfSpace space;
    hnswlib::HierarchicalNSW<float> hnsw;
    Graph(std::size_t dim, std::size_t capacity, std::size_t m, std::size_t ef_c, std::size_t ef)
        : space(dim), hnsw(&space, capacity, m, ef_c) {
        hnsw.setEf(ef);
    }
};

VectorIndex::VectorIndex(std::string embedder, std::size_t dimension, VectorIndexOptions opts)
    : m_embedder(std::move(embedder)), m_dim(dimension), m_opts(opts) {
    m_opts.m = std::clamp<std::size_t>(m_opts.m, 2, 256);
    m_opts.initial_capacity = std::max<std::size_t>(m_opts.initial_capacity, 16);
    m_graph = std::make_unique<Graph>(m_dim, m_opts.initial_capacity, m_opts.m, m_opts.ef_construction,
                                      m_opts.ef_search);
}

VectorIndex::~VectorIndex() = default;

std::shared_lock<std::shared_mutex> VectorIndex::read_lock() const {
    std::lock_guard g(m_gate);
    return std::shared_lock(m_mu);
}

std::unique_lock<std::shared_mutex> VectorIndex::write_lock() const {
    std::lock_guard g(m_gate);
    return std::unique_lock(m_mu);
}

const Half* VectorIndex::vector_of(std::int64_t label) const {
    auto& h = m_graph->hnsw;
    auto it = h.label_lookup_.find(static_cast<hnswlib::labeltype>(label));
    if (it == h.label_lookup_.end()) return nullptr;
    return reinterpret_cast<const Half*>(h.getDataByInternalId(it->second));
}

Status VectorIndex::add(std::int64_t label, std::span<const float> vec, std::uint64_t group, std::uint64_t stamp) {
    if (label <= 0) return fail(ErrorCode::cache_error, "vector index: labels must be positive");
    if (vec.size() != m_dim)
        return fail(ErrorCode::cache_error, "vector index: vector of " + std::to_string(vec.size()) +
                                                " dimensions added to a " + std::to_string(m_dim) + "-d index");
    Vector unit(vec.begin(), vec.end());
    if (!normalize(unit)) return fail(ErrorCode::cache_error, "vector index: zero or non-finite vector");
    auto lk = write_lock();
    if (m_compacting) m_journal.push_back(JournalOp{true, label, unit, group, stamp});
    return add_locked(label, unit.data(), group, stamp);
}

Status VectorIndex::add_locked(std::int64_t label, const float* unit, std::uint64_t group, std::uint64_t stamp) {
    auto& h = m_graph->hnsw;
    const auto lab = static_cast<hnswlib::labeltype>(label);
    try {
        if (!h.label_lookup_.count(lab) && h.cur_element_count >= h.max_elements_)
            h.resizeIndex(std::max<std::size_t>(h.max_elements_ * 2, 16));
        std::vector<Half> half(m_dim);
        to_half(unit, half.data(), m_dim);
        h.addPoint(half.data(), lab);
    } catch (const std::exception& e) {
        return fail(ErrorCode::cache_error, std::string("vector index: add failed: ") + e.what());
    }
    auto it = m_meta.find(label);
    if (it != m_meta.end()) {
        if (it->second.group == group) {
            it->second.stamp = stamp;
            return {};
        }
        // Moving groups: drop from the old one first.
        auto& old = m_groups[it->second.group];
        const std::size_t pos = it->second.group_pos;
        old[pos] = old.back();
        m_meta[old[pos]].group_pos = pos;
        old.pop_back();
        if (old.empty()) m_groups.erase(it->second.group);
    }
    auto& members = m_groups[group];
    members.push_back(label);
    m_meta[label] = Meta{group, stamp, members.size() - 1};
    return {};
}

bool VectorIndex::remove(std::int64_t label) {
    auto lk = write_lock();
    if (m_compacting) m_journal.push_back(JournalOp{false, label, {}, 0, 0});
    return remove_locked(label);
}

bool VectorIndex::remove_locked(std::int64_t label) {
    auto it = m_meta.find(label);
    if (it == m_meta.end()) return false;
    try {
        m_graph->hnsw.markDelete(static_cast<hnswlib::labeltype>(label));
    } catch (const std::exception&) {
        // Already deleted in the graph: the metadata below is what counts.
    }
    auto git = m_groups.find(it->second.group);
    if (git != m_groups.end()) {
        auto& members = git->second;
        const std::size_t pos = it->second.group_pos;
        if (pos < members.size() && members[pos] == label) {
            members[pos] = members.back();
            if (members[pos] != label) m_meta[members[pos]].group_pos = pos;
            members.pop_back();
        }
        if (members.empty()) m_groups.erase(git);
    }
    m_meta.erase(label);
    return true;
}

bool VectorIndex::contains(std::int64_t label) const {
    auto lk = read_lock();
    return m_meta.count(label) > 0;
}

std::vector<VectorMatch> VectorIndex::scan_locked(const float* q, std::size_t k,
                                                  const std::vector<std::int64_t>& labels) const {
    using Item = std::pair<float, std::int64_t>;  // min-heap on similarity
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> heap;
    for (auto label : labels) {
        const Half* v = vector_of(label);
        if (!v) continue;
        const float s = dot_float_half(q, v, m_dim);
        if (heap.size() < k) heap.emplace(s, label);
        else if (s > heap.top().first) {
            heap.pop();
            heap.emplace(s, label);
        }
    }
    std::vector<VectorMatch> out(heap.size());
    for (std::size_t i = out.size(); i-- > 0; heap.pop()) out[i] = VectorMatch{heap.top().second, heap.top().first};
    return out;
}

std::vector<VectorMatch> VectorIndex::search(std::span<const float> query, std::size_t k,
                                             std::optional<std::uint64_t> group) const {
    if (k == 0 || query.size() != m_dim) return {};
    Vector q(query.begin(), query.end());
    if (!normalize(q)) return {};
    auto lk = read_lock();
    const std::size_t live = m_meta.size();
    if (live == 0) return {};
    const std::vector<std::int64_t>* members = nullptr;
    if (group) {
        auto it = m_groups.find(*group);
        if (it == m_groups.end()) return {};
        members = &it->second;
        if (members->size() <= m_opts.brute_force_limit) return scan_locked(q.data(), k, *members);
    }
    const auto& h = m_graph->hnsw;
    std::vector<Half> qh(m_dim);
    to_half(q.data(), qh.data(), m_dim);
    std::size_t want = group ? std::max<std::size_t>(k * 4, 64) : k;
    for (;;) {
        const std::size_t kk = std::min(want, live);
        std::priority_queue<std::pair<float, hnswlib::labeltype>> res;
        try {
            res = h.searchKnn(qh.data(), kk);
        } catch (const std::exception&) {
            return scan_locked(q.data(), k, members ? *members : std::vector<std::int64_t>{});
        }
        std::vector<VectorMatch> out;
        while (!res.empty()) {
            const auto lab = res.top().second;
            res.pop();
            const auto label = static_cast<std::int64_t>(lab);
            if (group) {
                auto mit = m_meta.find(label);
                if (mit == m_meta.end() || mit->second.group != *group) continue;
            }
            // The graph ranked by half x half; report the float query against
            // the stored halves, which is closer to the true cosine.
            const Half* v = vector_of(label);
            out.push_back(VectorMatch{label, v ? dot_float_half(q.data(), v, m_dim) : 0.0f});
        }
        std::sort(out.begin(), out.end(), [](const VectorMatch& a, const VectorMatch& b) {
            return a.similarity > b.similarity || (a.similarity == b.similarity && a.label < b.label);
        });
        if (out.size() > k) out.resize(k);
        if (!group || out.size() >= k || kk >= live) return out;
        if (want >= 16 * m_opts.brute_force_limit) return scan_locked(q.data(), k, *members);
        want *= 4;
    }
}

std::vector<VectorMatch> VectorIndex::search_exact(std::span<const float> query, std::size_t k) const {
    if (k == 0 || query.size() != m_dim) return {};
    Vector q(query.begin(), query.end());
    if (!normalize(q)) return {};
    auto lk = read_lock();
    std::vector<std::int64_t> all;
    all.reserve(m_meta.size());
    for (const auto& [label, meta] : m_meta) all.push_back(label);
    return scan_locked(q.data(), k, all);
}

VectorIndexStats VectorIndex::stats() const {
    auto lk = read_lock();
    VectorIndexStats s;
    s.live = m_meta.size();
    s.deleted = m_graph->hnsw.cur_element_count - std::min(m_graph->hnsw.cur_element_count, m_meta.size());
    s.capacity = m_graph->hnsw.max_elements_;
    return s;
}

std::vector<VectorIndexEntry> VectorIndex::entries() const {
    auto lk = read_lock();
    std::vector<VectorIndexEntry> out;
    out.reserve(m_meta.size());
    for (const auto& [label, meta] : m_meta) out.push_back(VectorIndexEntry{label, meta.group, meta.stamp});
    return out;
}

bool VectorIndex::needs_compaction() const {
    const auto s = stats();
    const std::size_t total = s.live + s.deleted;
    return s.deleted >= m_opts.compact_min_deleted && total > 0 &&
           static_cast<double>(s.deleted) / static_cast<double>(total) > m_opts.compact_deleted_fraction;
}

Status VectorIndex::compact() {
    std::lock_guard cl(m_compact_mu);
    std::vector<std::int64_t> labels;
    std::vector<Meta> metas;
    std::vector<Half> vecs;
    {
        auto lk = write_lock();
        m_compacting = true;
        m_journal.clear();
        labels.reserve(m_meta.size());
        metas.reserve(m_meta.size());
        vecs.reserve(m_meta.size() * m_dim);
        for (const auto& [label, meta] : m_meta) {
            const Half* v = vector_of(label);
            if (!v) continue;
            labels.push_back(label);
            metas.push_back(meta);
            vecs.insert(vecs.end(), v, v + m_dim);
        }
    }
    std::unique_ptr<Graph> fresh;
    try {
        fresh = std::make_unique<Graph>(m_dim, std::max(m_opts.initial_capacity, labels.size() + labels.size() / 4 + 16),
                                        m_opts.m, m_opts.ef_construction, m_opts.ef_search);
        for (std::size_t i = 0; i < labels.size(); ++i)
            fresh->hnsw.addPoint(vecs.data() + i * m_dim, static_cast<hnswlib::labeltype>(labels[i]));
    } catch (const std::exception& e) {
        auto lk = write_lock();
        m_compacting = false;
        m_journal.clear();
        return fail(ErrorCode::cache_error, std::string("vector index: compaction failed: ") + e.what());
    }
    auto lk = write_lock();
    m_graph = std::move(fresh);
    m_meta.clear();
    m_groups.clear();
    for (std::size_t i = 0; i < labels.size(); ++i) {
        auto& members = m_groups[metas[i].group];
        members.push_back(labels[i]);
        m_meta[labels[i]] = Meta{metas[i].group, metas[i].stamp, members.size() - 1};
    }
    Status st;
    for (const auto& op : m_journal) {
        if (op.add) {
            if (auto r = add_locked(op.label, op.vec.data(), op.group, op.stamp); !r) st = r;
        } else {
            remove_locked(op.label);
        }
    }
    m_journal.clear();
    m_compacting = false;
    return st;
}

Status VectorIndex::save(const std::string& path) const {
    static std::atomic<unsigned> seq{0};
    const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(seq++);
    auto io_fail = [&](const std::string& what) {
        const int e = errno;
        ::unlink(tmp.c_str());
        return fail(ErrorCode::cache_error, "saving index " + path + ": " + what + ": " + std::strerror(e));
    };
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (fd.get() < 0) return io_fail("open");

    auto lk = read_lock();
    const auto& h = m_graph->hnsw;
    const std::size_t n = h.cur_element_count;
    Header hd;
    hd.dim = static_cast<std::uint32_t>(m_dim);
    std::memcpy(hd.embedder, m_embedder.data(), std::min(m_embedder.size(), k_name_len - 1));
    hd.elements = n;
    hd.live = m_meta.size();
    hd.m = h.M_;
    hd.ef_construction = h.ef_construction_;
    unsigned char hbuf[k_header_size];
    hd.encode(hbuf);  // placeholder, rewritten with the checksum below
    if (::write(fd.get(), hbuf, sizeof hbuf) != static_cast<ssize_t>(sizeof hbuf)) return io_fail("write");
    Writer body(fd.get());
    const std::int32_t maxlevel = h.maxlevel_;
    const std::uint32_t ep = h.enterpoint_node_;
    bool ok = body.put(&maxlevel, 4) && body.put(&ep, 4) && body.put(h.data_level0_memory_, n * h.size_data_per_element_);
    for (std::size_t i = 0; ok && i < n; ++i) {
        const auto level = static_cast<std::uint32_t>(h.element_levels_[i]);
        ok = body.put(&level, 4) && (level == 0 || body.put(h.linkLists_[i], h.size_links_per_element_ * level));
    }
    for (std::size_t i = 0; ok && i < n; ++i) {
        std::uint64_t tags[2] = {0, 0};
        auto it = m_meta.find(static_cast<std::int64_t>(h.getExternalLabel(static_cast<hnswlib::tableint>(i))));
        if (it != m_meta.end() && !h.isMarkedDeleted(static_cast<hnswlib::tableint>(i))) {
            tags[0] = it->second.group;
            tags[1] = it->second.stamp;
        }
        ok = body.put(tags, sizeof tags);
    }
    lk.unlock();
    if (!ok || !body.flush()) return io_fail("write");
    hd.payload_bytes = body.bytes();
    hd.payload_sum = body.checksum();
    hd.encode(hbuf);
    if (::pwrite(fd.get(), hbuf, sizeof hbuf, 0) != static_cast<ssize_t>(sizeof hbuf)) return io_fail("write header");
    if (::fsync(fd.get()) != 0) return io_fail("fsync");
    if (::close(fd.release()) != 0) return io_fail("close");
    if (::rename(tmp.c_str(), path.c_str()) != 0) return io_fail("rename");
    const auto slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dfd.get() >= 0) (void)::fsync(dfd.get());
    return {};
}

std::size_t VectorIndex::remove_stale_temp_files(const std::string& path) {
    const auto slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
    const std::string prefix = (slash == std::string::npos ? path : path.substr(slash + 1)) + ".tmp.";
    std::size_t removed = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
        const std::string name = e.path().filename().string();
        if (name.rfind(prefix, 0) != 0) continue;
        const long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
        if (pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM)) continue;  // still writing
        if (std::filesystem::remove(e.path(), ec)) ++removed;
    }
    return removed;
}

Result<std::unique_ptr<VectorIndex>> VectorIndex::load(const std::string& path, const std::string& embedder,
                                                       std::size_t dimension, VectorIndexOptions opts) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return fail(corrupt(path, std::string("cannot open: ") + std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return fail(corrupt(path, "cannot stat"));
    const auto file_size = static_cast<std::uint64_t>(st.st_size);
    if (file_size < k_header_size) return fail(corrupt(path, "truncated header"));
    unsigned char hbuf[k_header_size];
    Checksum ignore;
    if (!read_exact(fd.get(), hbuf, sizeof hbuf, ignore)) return fail(corrupt(path, "short read"));
    Header hd;
    if (!hd.decode(hbuf)) return fail(corrupt(path, "bad magic or header checksum"));
    if (hd.version != k_version) return fail(corrupt(path, "unsupported version " + std::to_string(hd.version)));
    if (hd.dim != dimension)
        return fail(corrupt(path, "dimension " + std::to_string(hd.dim) + ", expected " + std::to_string(dimension)));
    const std::string file_embedder(hd.embedder, strnlen(hd.embedder, k_name_len));
    if (file_embedder != embedder.substr(0, k_name_len - 1))
        return fail(corrupt(path, "built by embedder '" + file_embedder + "', expected '" + embedder + "'"));
    if (hd.m < 2 || hd.m > 256 || hd.ef_construction == 0 || hd.ef_construction > 100000 ||
        hd.elements > (1ull << 31) || hd.live > hd.elements)
        return fail(corrupt(path, "implausible header values"));
    if (hd.payload_bytes != file_size - k_header_size) return fail(corrupt(path, "truncated or padded payload"));

    const std::size_t n = hd.elements;
    const std::size_t maxm = hd.m, maxm0 = 2 * hd.m;
    const std::size_t size_links0 = maxm0 * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
    const std::size_t size_links = maxm * sizeof(hnswlib::tableint) + sizeof(hnswlib::linklistsizeint);
    const std::size_t per_elem = size_links0 + dimension * sizeof(Half) + sizeof(hnswlib::labeltype);
    // Minimum payload: the fixed part, level-0 blocks, levels and tags.
    if (hd.payload_bytes < 8 + n * (per_elem + 4 + 16)) return fail(corrupt(path, "payload too small"));

    opts.m = hd.m;
    opts.ef_construction = hd.ef_construction;
    std::unique_ptr<VectorIndex> idx;
    try {
        opts.initial_capacity = std::max<std::size_t>(opts.initial_capacity, n + n / 4 + 16);
        idx = std::make_unique<VectorIndex>(embedder, dimension, opts);
    } catch (const std::exception& e) {
        return fail(corrupt(path, std::string("cannot allocate: ") + e.what()));
    }
    auto& h = idx->m_graph->hnsw;
    if (h.size_data_per_element_ != per_elem || h.size_links_per_element_ != size_links)
        return fail(corrupt(path, "layout mismatch"));

    Checksum sum;
    std::int32_t maxlevel = 0;
    std::uint32_t ep = 0;
    if (!read_exact(fd.get(), &maxlevel, 4, sum) || !read_exact(fd.get(), &ep, 4, sum))
        return fail(corrupt(path, "truncated"));
    if (n && !read_exact(fd.get(), h.data_level0_memory_, n * per_elem, sum)) return fail(corrupt(path, "truncated"));
    std::vector<int> levels(n, 0);
    std::vector<std::unique_ptr<char, FreeDeleter>> links(n);
    std::uint64_t consumed = 8 + n * per_elem;
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t level = 0;
        if (!read_exact(fd.get(), &level, 4, sum)) return fail(corrupt(path, "truncated"));
        consumed += 4;
        if (level > 64 || static_cast<std::int64_t>(level) > maxlevel) return fail(corrupt(path, "bad element level"));
        levels[i] = static_cast<int>(level);
        if (level) {
            const std::size_t bytes = size_links * level;
            consumed += bytes;
            if (consumed + (n - i - 1) * 4 + n * 16 > hd.payload_bytes) return fail(corrupt(path, "truncated"));
            links[i].reset(static_cast<char*>(std::malloc(bytes)));
            if (!links[i]) return fail(corrupt(path, "cannot allocate link lists"));
            if (!read_exact(fd.get(), links[i].get(), bytes, sum)) return fail(corrupt(path, "truncated"));
        }
    }
    std::vector<std::uint64_t> tags(2 * n);
    if (n && !read_exact(fd.get(), tags.data(), tags.size() * 8, sum)) return fail(corrupt(path, "truncated"));
    consumed += n * 16;
    if (consumed != hd.payload_bytes) return fail(corrupt(path, "payload size mismatch"));
    if (sum.finish() != hd.payload_sum) return fail(corrupt(path, "payload checksum mismatch"));

    // The checksum matched; still verify everything hnswlib would trust.
    if (n == 0) {
        // hnswlib starts from the entry point unless it is -1: an empty
        // graph with any other one would make the first insert walk garbage.
        if (maxlevel != -1 || ep != static_cast<std::uint32_t>(-1)) return fail(corrupt(path, "bad entry point"));
    } else if (ep >= n || maxlevel < 0 || levels[ep] != maxlevel) {
        return fail(corrupt(path, "bad entry point"));
    }
    std::unordered_set<std::int64_t> seen_labels;
    seen_labels.reserve(n);
    std::size_t live = 0;
    for (std::size_t i = 0; i < n; ++i) {
        auto* ll0 = reinterpret_cast<const unsigned char*>(h.data_level0_memory_ + i * per_elem);
        std::uint16_t cnt;
        std::memcpy(&cnt, ll0, 2);
        if (cnt > maxm0 || ll0[2] > 1 || ll0[3] != 0) return fail(corrupt(path, "bad level-0 list header"));
        const auto* nb = reinterpret_cast<const hnswlib::tableint*>(ll0 + 4);
        for (std::size_t j = 0; j < cnt; ++j)
            if (nb[j] >= n) return fail(corrupt(path, "neighbour out of range"));
        for (int l = 1; l <= levels[i]; ++l) {
            auto* ll = reinterpret_cast<const unsigned char*>(links[i].get() + (l - 1) * size_links);
            std::uint16_t c;
            std::memcpy(&c, ll, 2);
            if (c > maxm) return fail(corrupt(path, "bad upper list header"));
            const auto* nbl = reinterpret_cast<const hnswlib::tableint*>(ll + 4);
            for (std::size_t j = 0; j < c; ++j)
                if (nbl[j] >= n || levels[nbl[j]] < l) return fail(corrupt(path, "upper neighbour out of range"));
        }
        for (std::size_t d = 0; d < dimension; ++d) {
            Half v;
            std::memcpy(&v, ll0 + size_links0 + d * sizeof(Half), sizeof v);
            if (!half_finite(v)) return fail(corrupt(path, "non-finite vector"));
        }
        hnswlib::labeltype lab;
        std::memcpy(&lab, ll0 + size_links0 + dimension * sizeof(Half), sizeof lab);
        const auto label = static_cast<std::int64_t>(lab);
        if (label <= 0 || !seen_labels.insert(label).second) return fail(corrupt(path, "bad or duplicate label"));
        if (ll0[2] == 0) ++live;
    }
    if (live != hd.live) return fail(corrupt(path, "live count mismatch"));

    // Commit into the graph (until here cur_element_count was 0, so a failed
    // load freed only what `links` owns).
    for (std::size_t i = 0; i < n; ++i) {
        h.element_levels_[i] = levels[i];
        h.linkLists_[i] = links[i].release();
        const auto lab = h.getExternalLabel(static_cast<hnswlib::tableint>(i));
        h.label_lookup_[lab] = static_cast<hnswlib::tableint>(i);
        if (h.isMarkedDeleted(static_cast<hnswlib::tableint>(i))) {
            ++h.num_deleted_;
            continue;
        }
        auto& members = idx->m_groups[tags[2 * i]];
        members.push_back(static_cast<std::int64_t>(lab));
        idx->m_meta[static_cast<std::int64_t>(lab)] = Meta{tags[2 * i], tags[2 * i + 1], members.size() - 1};
    }
    h.cur_element_count = n;
    h.maxlevel_ = maxlevel;
    h.enterpoint_node_ = ep;
    return idx;
}

}  // namespace l04

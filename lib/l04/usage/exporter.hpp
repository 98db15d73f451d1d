#pragma once
// Posts ledger rows as JSON to a configured URL (the spec's usage-tracking
// bridge, L01_BASE_URL with L01_API_KEY): batched, retried with backoff, and
// never blocking a prompt. enqueue() only appends to a bounded in-memory
// queue (oldest rows dropped, and counted, past max_queue); a background
// thread sends batches. Rows still queued at shutdown get one last try.
#include <l04/core/clock.hpp>
#include <l04/http/transport.hpp>
#include <l04/usage/ledger.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace l04 {

struct ExporterConfig {
    std::string url;      // rows are POSTed to url + "/usage" unless it already ends with a path
    std::string api_key;  // sent as a bearer token, never logged
    std::size_t batch_size = 100;
    std::chrono::milliseconds interval{2000};
    int max_attempts = 5;
    std::size_t max_queue = 10000;
};

struct ExporterStats {
    std::uint64_t sent = 0;
    std::uint64_t failed_batches = 0;
    std::uint64_t dropped = 0;
    std::size_t queued = 0;
};

class UsageExporter {
public:
    // background=false: no thread; the owner calls flush() (tests).
    UsageExporter(ExporterConfig cfg, std::shared_ptr<Transport> transport, Clock& clock, bool background = true);
    ~UsageExporter();
    void enqueue(const UsageRow& row);
    // Sends everything queued now (retrying per max_attempts); returns
    // whether the queue was emptied.
    bool flush();
    ExporterStats stats();
    // The JSON body for a batch.
    static std::string batch_json(const std::vector<UsageRow>& rows);

private:
    bool send_batch(const std::vector<UsageRow>& rows);
    void loop();
    ExporterConfig m_cfg;
    std::shared_ptr<Transport> m_transport;
    Clock& m_clock;
    std::mutex m_mu;
    std::condition_variable m_cv;
    std::deque<UsageRow> m_queue;
    ExporterStats m_stats;
    std::atomic<bool> m_stop{false};
    std::thread m_thread;
};

}  // namespace l04

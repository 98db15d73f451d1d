#include "support/daemon_env.hpp"

#include <filesystem>
#include <fstream>
#include <thread>
#include <unistd.h>

namespace l04::test {

DaemonEnv::DaemonEnv() {
    std::filesystem::create_directories(config_dir());
    m_env = {{"L04_STATE_DIR", state_dir()},
             {"L04_RUNTIME_DIR", runtime_dir()},
             {"XDG_CONFIG_HOME", m_dir.file("cfg")},
             {"HOME", m_dir.str()},
             {"L04_IDLE_TIMEOUT", "120"},
             {"L04_SHARE_DIR", std::string(L04_SOURCE_DIR) + "/share"},
             {"NO_COLOR", "1"}};
}

DaemonEnv::~DaemonEnv() { stop_daemon(); }

void DaemonEnv::use_fixture_providers(const std::string& base) {
    m_env["OPENAI_BASE_URL"] = base + "/v1";
    m_env["OPENAI_API_KEY"] = "sk-openai-test";
    m_env["ANTHROPIC_BASE_URL"] = base;
    m_env["ANTHROPIC_API_KEY"] = "sk-ant-test";
    m_env["OLLAMA_URL"] = base;
    m_env["GEMINI_BASE_URL"] = base;
    m_env["GEMINI_API_KEY"] = "gm-test";
}

ProcOptions DaemonEnv::options(const std::string& stdin_data) const {
    ProcOptions o;
    o.env = m_env;
    o.unset_env = {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OLLAMA_URL", "L04_CONFIG",
                   "L04_NO_DAEMON", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GEMINI_BASE_URL", "L04_AGENT"};
    o.stdin_data = stdin_data;
    o.stdin_is_devnull = stdin_data.empty();
    return o;
}

ProcResult DaemonEnv::ctl(const std::vector<std::string>& args, const std::string& stdin_data,
                          std::chrono::milliseconds timeout) const {
    std::vector<std::string> argv{bin("l04ctl")};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcOptions o = options(stdin_data);
    o.timeout = timeout;
    return run(argv, o);
}

int DaemonEnv::daemon_pid() const {
    std::ifstream in(runtime_dir() + "/l04d.pid");
    int pid = 0;
    in >> pid;
    return pid;
}

namespace {
// Alive and not a zombie (l04d is re-parented; its reaper may be slow).
bool alive(int pid) {
    if (::kill(pid, 0) != 0) return false;
    std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(st, line);
    auto close = line.rfind(')');
    return !(close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z');
}
}  // namespace

bool DaemonEnv::wait_gone(int pid, std::chrono::milliseconds timeout) {
    // l04d is not our child (it detached): poll until it disappears.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto wait = std::chrono::milliseconds(1);
    while (alive(pid) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(wait);
        wait = std::min(wait * 2, std::chrono::milliseconds(20));
    }
    return !alive(pid);
}

int DaemonEnv::stop_daemon() const {
    int pid = daemon_pid();
    if (pid <= 0 || !alive(pid)) return 0;
    ::kill(pid, SIGTERM);
    if (!wait_gone(pid, std::chrono::seconds(30))) ::kill(pid, SIGKILL);
    return pid;
}

}  // namespace l04::test

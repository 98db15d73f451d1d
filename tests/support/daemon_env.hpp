#pragma once
// An isolated l04 environment for integration tests: temp state, runtime and
// config directories, no provider keys, and helpers to run l04ctl. Stops the
// l04d it started (by the PID in its own runtime dir) when destroyed.
#include "support/process.hpp"
#include "support/test_util.hpp"

#include <csignal>
#include <string>
#include <vector>

namespace l04::test {

class DaemonEnv {
public:
    DaemonEnv();
    ~DaemonEnv();

    // Runs l04ctl with args in this environment.
    ProcResult ctl(const std::vector<std::string>& args, const std::string& stdin_data = {},
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(30000)) const;
    ProcOptions options(const std::string& stdin_data = {}) const;

    std::string state_dir() const { return m_dir.file("state"); }
    std::string runtime_dir() const { return m_dir.file("run"); }
    std::string config_dir() const { return m_dir.file("cfg") + "/l04"; }
    std::string socket_path() const { return runtime_dir() + "/l04d.sock"; }
    std::string log_path() const { return state_dir() + "/l04d.log"; }
    // PID of the running l04d (from its pid file), or 0.
    int daemon_pid() const;
    // Waits (bounded) for process pid to exit without signalling it.
    static bool wait_gone(int pid, std::chrono::milliseconds timeout = std::chrono::milliseconds(30000));
    // Sends SIGTERM to our l04d and waits for it to exit. Returns its pid or 0.
    int stop_daemon() const;
    std::map<std::string, std::string>& env() { return m_env; }
    // Points every HTTP provider (OpenAI, Anthropic, Ollama, Gemini) at one
    // fixture server's base URL, with test keys.
    void use_fixture_providers(const std::string& base);
    const TempDir& dir() const { return m_dir; }

private:
    TempDir m_dir;
    std::map<std::string, std::string> m_env;
};

}  // namespace l04::test

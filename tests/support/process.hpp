#pragma once
// Runs a program as a subprocess (no shell) with extra environment, optional
// stdin, and a bounded run time; collects exit status, stdout and stderr.
#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace l04::test {

struct ProcResult {
    int exit_code = -1;  // -1 when killed by a signal or timed out
    int signal = 0;
    bool timed_out = false;
    std::string out;
    std::string err;
};

struct ProcOptions {
    std::map<std::string, std::string> env;  // added to / overriding the environment
    std::vector<std::string> unset_env;
    std::string stdin_data;
    bool stdin_is_devnull = false;  // otherwise a pipe fed stdin_data, then closed
    std::chrono::milliseconds timeout{60000};
};

ProcResult run(const std::vector<std::string>& argv, const ProcOptions& opts = {});

// Starts a process and returns its pid (stdout/stderr to /dev/null unless
// log_path is set); the caller reaps it with wait_pid.
int spawn(const std::vector<std::string>& argv, const ProcOptions& opts, const std::string& log_path = {});
// Waits up to timeout for pid to exit; returns its exit code, or -1 on timeout
// (the process is then killed).
int wait_pid(int pid, std::chrono::milliseconds timeout);

// Waits for an l04d started with `--listen 127.0.0.1:0` and logging to
// log_path to say it is ready; returns the TCP port it logged ("(port N)"),
// or 0 when it did not within timeout.
int wait_for_l04d_port(const std::string& log_path, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

// Path of a built binary (build/bin/NAME).
std::string bin(const std::string& name);

}  // namespace l04::test

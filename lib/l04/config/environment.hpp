#pragma once
// The process environment, read in one place: settings (config/settings.cpp)
// and the few lookups that are not settings ($PATH for command providers,
// L04D_PATH for the daemon binary). Nothing else in lib/ calls getenv
// (tests/unit/test_layering.cpp checks it).
#include <optional>
#include <string>

namespace l04 {

// The variable's value; nullopt when unset (an empty value is returned as "").
std::optional<std::string> env_var(const char* name);

// Whether a proxy variable that libcurl would apply to http:// URLs is set
// (http_proxy, all_proxy, ALL_PROXY; HTTP_PROXY is ignored for http:// by
// libcurl, as by most clients). While one is, every upstream request goes
// through libcurl, which honours it and no_proxy.
bool http_proxy_in_environment();

// The whole environment, for a child that inherits it (execve's envp).
char* const* environment_block();

// The full path of an executable: `name` itself when it holds a '/' (if
// executable), else the first match on $PATH (/usr/local/bin:/usr/bin:/bin
// when PATH is unset). nullopt when there is none.
std::optional<std::string> find_executable(const std::string& name);

}  // namespace l04

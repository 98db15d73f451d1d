#pragma once
// Start-up shared by l04d and l04ctl --no-daemon: settings, registry, the
// gateway with its stateful stages.
#include <l04/config/registry.hpp>
#include <l04/config/settings.hpp>
#include <l04/gateway.hpp>

#include <cstdint>
#include <memory>

namespace l04 {

// The installed catalogue, then the user's models.toml (models_file setting,
// else $XDG_CONFIG_HOME/l04/models.toml) merged over it.
Result<Registry> load_registry(const Settings& settings);
// A gateway with every stage configured from settings; `daemon` for l04d
// (GatewayOptions::daemon).
Result<std::unique_ptr<Gateway>> open_gateway(const Settings& settings, bool daemon = false);
// Raises the soft RLIMIT_NOFILE to the hard limit (capped by fs.nr_open when
// the hard limit is unlimited). l04d holds two sockets per stream (the
// client's and the upstream's), so 1,000 streams need more than the usual
// soft limit of 1,024. Returns the soft limit in force afterwards; when it
// cannot be raised, the old one.
std::uint64_t raise_fd_limit();

}  // namespace l04

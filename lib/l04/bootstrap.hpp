#pragma once
// Start-up shared by l04d and l04ctl --no-daemon: settings, registry, the
// gateway with its stateful stages.
#include <l04/config/registry.hpp>
#include <l04/config/settings.hpp>
#include <l04/gateway.hpp>

#include <memory>

namespace l04 {

// The installed catalogue, then the user's models.toml (models_file setting,
// else $XDG_CONFIG_HOME/l04/models.toml) merged over it.
Result<Registry> load_registry(const Settings& settings);
// A gateway with every stage configured from settings.
Result<std::unique_ptr<Gateway>> open_gateway(const Settings& settings);

}  // namespace l04

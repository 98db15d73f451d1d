#pragma once
// Builds provider adapters from the registry's [providers.*] tables and the
// settings (keys, base URL overrides).
#include <l04/config/registry.hpp>
#include <l04/config/settings.hpp>
#include <l04/http/transport.hpp>
#include <l04/provider/provider.hpp>

#include <memory>

namespace l04 {

// Resolves key and base URL for a provider and says whether it is usable.
ProviderConfig resolve_provider_config(const ProviderInfo& info, const Settings& settings);

// Creates the adapter for cfg.info->kind. Fails with E4002 when the provider
// is not configured (naming what to set).
Result<std::unique_ptr<Provider>> make_provider(const ProviderConfig& cfg, Transport& transport, Clock& clock);

}  // namespace l04

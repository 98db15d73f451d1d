#pragma once
// libcurl implementation of Transport. Keeps a pool of easy handles so
// connections (and TLS sessions) are reused across requests; HTTP/2 where
// the server offers it over TLS; proxies from the standard environment
// variables (libcurl reads http_proxy/https_proxy/no_proxy itself).
#include <l04/http/transport.hpp>

#include <memory>

namespace l04 {

std::shared_ptr<Transport> make_curl_transport();

}  // namespace l04

#pragma once
// A lean HTTP/1.1 client for plain-HTTP upstreams on literal addresses (a
// local Ollama, vLLM or llama.cpp server, an OpenAI-compatible server on
// the LAN, l04's benchmark upstream), beside libcurl for everything else.
//
// Why: profiled at 16 requests in flight against a local upstream, libcurl's
// easy interface took about a third of l04d's CPU per request: four poll()
// calls, a shared connection cache behind a lock taken several times, URL
// and header re-parsing. This client writes the request with one send(),
// waits with one poll() per read, and keeps idle connections per origin.
//
// make_transport() chooses per request: this client when the URL is
// http:// to an IP literal or "localhost" (no DNS: nothing can block in a
// resolver), without user:password in the URL, and the caller says no proxy
// variable applies (config's http_proxy_in_environment()); libcurl
// otherwise (TLS, HTTP/2, proxies, host names).
//
// Same contract as CurlTransport (transport.hpp): the head before the first
// body byte, the body piece by piece, E4201 / E4202 / E4604 as documented
// there, error messages naming only scheme://host:port. A request sent on
// a reused connection that the server had closed (nothing came back) is sent
// again once on a new connection, as libcurl does; an answer the server
// sends before it has read the whole body (413) is read and returned. The
// cancel flag and the total timeout are checked between pieces and about
// once a second while the upstream is silent (as libcurl's progress
// callback).
#include <l04/http/transport.hpp>

#include <memory>
#include <string>

namespace l04 {

std::shared_ptr<Transport> make_http1_transport();

// The Transport l04 uses: the HTTP/1.1 client where it applies (above),
// libcurl for the rest and for everything while proxy_in_env.
std::shared_ptr<Transport> make_transport(bool proxy_in_env);

// Whether make_transport(proxy_in_env) sends this URL through the HTTP/1.1
// client.
bool http1_applies(const std::string& url, bool proxy_in_env);

}  // namespace l04

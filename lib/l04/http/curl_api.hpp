#pragma once
// libcurl, loaded on first use with dlopen("libcurl.so.4") instead of being
// linked: l04ctl on the daemon path never makes an HTTP call to a provider,
// and linking libcurl would make every l04ctl start map ~28 more shared
// libraries (TLS, Kerberos, LDAP, SSH ...), a few milliseconds per run.
// Only curl_transport.cpp uses this.
#ifndef CURL_DISABLE_TYPECHECK
#define CURL_DISABLE_TYPECHECK
#endif
#include <curl/curl.h>

#include <string>

namespace l04 {

struct CurlApi {
    decltype(&::curl_global_init) global_init;
    decltype(&::curl_easy_init) easy_init;
    decltype(&::curl_easy_cleanup) easy_cleanup;
    decltype(&::curl_easy_reset) easy_reset;
    decltype(&::curl_easy_setopt) easy_setopt;
    decltype(&::curl_easy_perform) easy_perform;
    decltype(&::curl_easy_getinfo) easy_getinfo;
    decltype(&::curl_easy_strerror) easy_strerror;
    decltype(&::curl_share_init) share_init;
    decltype(&::curl_share_setopt) share_setopt;
    decltype(&::curl_share_cleanup) share_cleanup;
    decltype(&::curl_slist_append) slist_append;
    decltype(&::curl_slist_free_all) slist_free_all;
};

// The loaded API (curl_global_init already called), or nullptr with `error`
// set when libcurl cannot be loaded. Thread-safe; loads once.
const CurlApi* curl_api(std::string* error = nullptr);

}  // namespace l04

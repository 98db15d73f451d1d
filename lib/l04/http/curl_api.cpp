#include <l04/http/curl_api.hpp>

#include <dlfcn.h>

#include <mutex>

namespace l04 {

namespace {

struct Loaded {
    CurlApi api{};
    bool ok = false;
    std::string error;
};

template <class F>
bool bind(void* lib, const char* name, F& out, std::string& error) {
    out = reinterpret_cast<F>(::dlsym(lib, name));
    if (!out) error = std::string("libcurl has no symbol ") + name;
    return out != nullptr;
}

Loaded load() {
    Loaded l;
    void* lib = nullptr;
    for (const char* name : {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so"}) {
        lib = ::dlopen(name, RTLD_NOW | RTLD_LOCAL);
        if (lib) break;
    }
    if (!lib) {
        const char* e = ::dlerror();
        l.error = std::string("cannot load libcurl (install the libcurl4 package): ") + (e ? e : "not found");
        return l;
    }
    CurlApi& a = l.api;
    std::string& e = l.error;
    l.ok = bind(lib, "curl_global_init", a.global_init, e) && bind(lib, "curl_easy_init", a.easy_init, e) &&
           bind(lib, "curl_easy_cleanup", a.easy_cleanup, e) && bind(lib, "curl_easy_reset", a.easy_reset, e) &&
           bind(lib, "curl_easy_setopt", a.easy_setopt, e) && bind(lib, "curl_easy_perform", a.easy_perform, e) &&
           bind(lib, "curl_easy_getinfo", a.easy_getinfo, e) && bind(lib, "curl_easy_strerror", a.easy_strerror, e) &&
           bind(lib, "curl_share_init", a.share_init, e) && bind(lib, "curl_share_setopt", a.share_setopt, e) &&
           bind(lib, "curl_share_cleanup", a.share_cleanup, e) && bind(lib, "curl_slist_append", a.slist_append, e) &&
           bind(lib, "curl_slist_free_all", a.slist_free_all, e);
    if (l.ok) a.global_init(CURL_GLOBAL_DEFAULT);
    return l;
}

}  // namespace

const CurlApi* curl_api(std::string* error) {
    static const Loaded loaded = load();  // thread-safe static initialisation
    if (!loaded.ok) {
        if (error) *error = loaded.error;
        return nullptr;
    }
    return &loaded.api;
}

}  // namespace l04

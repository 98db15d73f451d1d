#pragma once
// How a cached answer is replayed to a streaming caller: split after spaces
// into pieces of about four words, short answers still in at least three
// pieces, never inside a UTF-8 sequence. The mock provider streams its
// answers the same way, but the cache owns the rule: a replay must not
// depend on an adapter.
#include <string>
#include <vector>

namespace l04 {

std::vector<std::string> stream_pieces(const std::string& text);

}  // namespace l04

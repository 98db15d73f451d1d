#include <l04/limit/circuit_breaker.hpp>

namespace l04 {

std::string_view circuit_state_name(CircuitState s) {
    switch (s) {
        case CircuitState::closed: return "closed";
        case CircuitState::half_open: return "half_open";
        case CircuitState::open: return "open";
    }
    return "closed";
}

}  // namespace l04

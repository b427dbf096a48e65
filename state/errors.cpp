#include "state/errors.hpp"

#include <string>

namespace toolgate::state {

namespace {

class state_category final : public boost::system::error_category {
public:
    char const* name() const noexcept override { return "toolgate.state"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::unavailable: return "state store unavailable";
            case errc::timeout: return "state store timed out";
            case errc::protocol: return "unreadable answer from the state store";
            case errc::storage: return "the state store refused the write";
            case errc::overloaded: return "the state store's queue is full";
        }
        return "state store error";
    }
};

}  // namespace

boost::system::error_category const& category() noexcept {
    static state_category const c;
    return c;
}

}  // namespace toolgate::state

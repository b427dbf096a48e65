#include "common/resilience.hpp"

#include <cmath>
#include <limits>

namespace toolgate::resilience {

std::string_view to_string(breaker_state s) {
    switch (s) {
        case breaker_state::closed: return "closed";
        case breaker_state::open: return "open";
        case breaker_state::half_open: return "half_open";
    }
    return "closed";
}

// ---- circuit breaker -------------------------------------------------------------------------------

namespace {

// time_point{} means "closed", so an open deadline must never land on it (a test clock starting at the
// epoch with open_for == 0 would otherwise close the breaker the moment it opens).
clock::time_point open_deadline(clock::time_point now, milliseconds open_for) {
    auto until = now + open_for;
    return until == clock::time_point{} ? until + clock::duration{1} : until;
}

}  // namespace

circuit_breaker::decision circuit_breaker::admit(clock::time_point now) {
    if (!is_open()) return decision::allow;
    if (now < open_until_ || trial_in_flight_) return decision::reject;
    trial_in_flight_ = true;
    return decision::trial;
}

bool circuit_breaker::record(decision d, bool failure, clock::time_point now) {
    bool was_open = is_open();
    switch (d) {
        case decision::reject: return false;
        case decision::allow:
            // Calls admitted before the breaker opened may finish after it did: their outcome is stale
            // and must neither close the breaker behind the probe's back nor push its deadline out.
            if (was_open) return false;
            if (!failure) {
                failures_ = 0;
            } else if (++failures_ >= threshold_) {
                open_until_ = open_deadline(now, open_for_);
                probe_successes_ = 0;
            }
            break;
        case decision::trial:
            trial_in_flight_ = false;
            if (!was_open) return false;  // cannot happen (only a trial closes it); keep the slot free anyway
            if (failure) {
                ++failures_;  // kept counting so the owner can log how long the target has been failing
                probe_successes_ = 0;
                open_until_ = open_deadline(now, open_for_);
            } else if (++probe_successes_ >= successes_needed_) {
                failures_ = 0;
                probe_successes_ = 0;
                open_until_ = {};
            }
            // else: still half-open; the next admit() hands out the next probe.
            break;
    }
    return was_open != is_open();
}

void circuit_breaker::abandon(decision d) {
    if (d == decision::trial) trial_in_flight_ = false;
}

bool circuit_breaker::would_admit(clock::time_point now) const {
    return !is_open() || (now >= open_until_ && !trial_in_flight_);
}

breaker_state circuit_breaker::state(clock::time_point now) const {
    if (!is_open()) return breaker_state::closed;
    return now < open_until_ ? breaker_state::open : breaker_state::half_open;
}

// ---- full jitter -----------------------------------------------------------------------------------

milliseconds full_jitter(milliseconds base, milliseconds cap, unsigned retry, double unit) {
    std::int64_t const b = base.count(), c = cap.count();
    if (b <= 0 || c <= 0) return milliseconds{0};
    // b * 2^retry <= c exactly when b <= c >> retry, which never overflows; past 62 doublings any
    // positive base exceeds every int64 cap.
    std::int64_t const ceiling = (retry < 63 && b <= (c >> retry)) ? b << retry : c;
    if (!(unit > 0)) return milliseconds{0};  // also NaN
    // unit * (ceiling + 1) spreads [0, 1) evenly over the whole milliseconds 0..ceiling; rounding near
    // unit == 1 (or a caller's unit >= 1) may reach ceiling + 1, hence the clamp.
    double const spread = unit * (static_cast<double>(ceiling) + 1.0);
    if (spread >= static_cast<double>(ceiling)) return milliseconds{ceiling};
    return milliseconds{static_cast<std::int64_t>(spread)};
}

// ---- retry budget ----------------------------------------------------------------------------------

namespace {

std::int64_t second_of(clock::time_point now) {
    return std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count();
}

// A bucket counts while its second is one of the last `buckets` seconds, now's included.
bool in_window(std::int64_t bucket_second, std::int64_t now_second) {
    return bucket_second >= 0 && bucket_second <= now_second &&
           now_second - bucket_second < static_cast<std::int64_t>(retry_budget::buckets);
}

}  // namespace

retry_budget::bucket& retry_budget::at(clock::time_point now) {
    auto const second = second_of(now);
    auto const n = static_cast<std::int64_t>(buckets);
    auto& b = ring_[static_cast<std::size_t>(((second % n) + n) % n)];
    if (b.second != second) b = bucket{second, 0, 0};  // a lap of the ring ago: forget it
    return b;
}

void retry_budget::record_request(clock::time_point now) { ++at(now).requests; }

bool retry_budget::try_retry(clock::time_point now) {
    auto const requests = static_cast<double>(requests_in_window(now));
    auto const share = static_cast<std::uint64_t>(std::floor(std::max(0.0, ratio_ * requests)));
    if (retries_in_window(now) >= std::max<std::uint64_t>(min_retries_, share)) return false;
    ++at(now).retries;
    return true;
}

std::uint64_t retry_budget::requests_in_window(clock::time_point now) {
    std::uint64_t sum = 0;
    for (auto const& b : ring_)
        if (in_window(b.second, second_of(now))) sum += b.requests;
    return sum;
}

std::uint64_t retry_budget::retries_in_window(clock::time_point now) {
    std::uint64_t sum = 0;
    for (auto const& b : ring_)
        if (in_window(b.second, second_of(now))) sum += b.retries;
    return sum;
}

// ---- Retry-After -----------------------------------------------------------------------------------

namespace {

// Ten digits of seconds is over 300 years: anything longer is garbage, and the bound keeps every
// later multiplication far from overflow.
constexpr std::size_t max_whole_digits = 10;
constexpr std::int64_t max_seconds = 9'999'999'999;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_digit(c); });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// "12" or "12.345" as a count of 10^-scale units, rounded up so that a server is never retried early.
std::optional<std::int64_t> parse_decimal(std::string_view s, std::size_t scale) {
    auto const dot = s.find('.');
    auto const whole = s.substr(0, dot);
    auto const frac = dot == std::string_view::npos ? std::string_view{} : s.substr(dot + 1);
    if (!all_digits(whole) || whole.size() > max_whole_digits) return std::nullopt;
    if (dot != std::string_view::npos && !all_digits(frac)) return std::nullopt;
    std::int64_t v = 0;
    for (char c : whole) v = v * 10 + (c - '0');
    for (std::size_t i = 0; i < scale; ++i) v = v * 10 + (i < frac.size() ? frac[i] - '0' : 0);
    if (frac.size() > scale && frac.substr(scale).find_first_not_of('0') != std::string_view::npos) ++v;
    return v;
}

// A cursor over an HTTP date; each step consumes on success and says whether it matched.
struct date_reader {
    std::string_view s;

    bool literal(std::string_view l) {
        if (s.substr(0, l.size()) != l) return false;
        s.remove_prefix(l.size());
        return true;
    }
    bool number(std::size_t digits, int& out) {
        if (s.size() < digits || !all_digits(s.substr(0, digits))) return false;
        out = 0;
        for (std::size_t i = 0; i < digits; ++i) out = out * 10 + (s[i] - '0');
        s.remove_prefix(digits);
        return true;
    }
    // One of `names`; its index, from 0, in `out`.
    template <std::size_t N>
    bool one_of(std::array<std::string_view, N> const& names, int& out) {
        for (std::size_t i = 0; i < N; ++i) {
            if (literal(names[i])) {
                out = static_cast<int>(i);
                return true;
            }
        }
        return false;
    }
    bool time_of_day(int& h, int& m, int& sec) {
        return number(2, h) && literal(":") && number(2, m) && literal(":") && number(2, sec) && h < 24 && m < 60 &&
               sec <= 60;
    }
};

constexpr std::array<std::string_view, 7> short_days{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> long_days{"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                    "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> months{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Seconds since the Unix epoch of an HTTP-date (RFC 9110 section 5.6.7): IMF-fixdate, or the obsolete
// RFC 850 and asctime forms recipients must still accept. std::chrono's civil calendar instead of
// timegm: no TZ or locale state, and it rejects 31 Feb. The weekday is not checked against the date.
std::optional<std::int64_t> parse_http_date(std::string_view text, std::int64_t now_unix_seconds) {
    using namespace std::chrono;
    date_reader r{text};
    int wd = 0, d = 0, mon = 0, y = 0, h = 0, mi = 0, sec = 0;
    bool ok = false;
    if (text.size() > 3 && text[3] == ',') {  // Sun, 06 Nov 1994 08:49:37 GMT
        ok = r.one_of(short_days, wd) && r.literal(", ") && r.number(2, d) && r.literal(" ") &&
             r.one_of(months, mon) && r.literal(" ") && r.number(4, y) && r.literal(" ") && r.time_of_day(h, mi, sec) &&
             r.literal(" GMT");
    } else if (text.find(',') != std::string_view::npos) {  // Sunday, 06-Nov-94 08:49:37 GMT
        ok = r.one_of(long_days, wd) && r.literal(", ") && r.number(2, d) && r.literal("-") && r.one_of(months, mon) &&
             r.literal("-") && r.number(2, y) && r.literal(" ") && r.time_of_day(h, mi, sec) && r.literal(" GMT");
        if (ok) {
            // Two-digit years: more than 50 years ahead means the most recent past year with those digits.
            auto const today = floor<days>(sys_seconds{seconds{now_unix_seconds}});
            int const now_year = static_cast<int>(year_month_day{today}.year());
            y += now_year - now_year % 100;
            if (y > now_year + 50) y -= 100;
        }
    } else {  // Sun Nov  6 08:49:37 1994
        ok = r.one_of(short_days, wd) && r.literal(" ") && r.one_of(months, mon) && r.literal(" ") &&
             (r.literal(" ") ? r.number(1, d) : r.number(2, d)) && r.literal(" ") && r.time_of_day(h, mi, sec) &&
             r.literal(" ") && r.number(4, y);
    }
    if (!ok || !r.s.empty()) return std::nullopt;
    year_month_day const ymd{year{y}, month{static_cast<unsigned>(mon + 1)}, day{static_cast<unsigned>(d)}};
    if (!ymd.ok()) return std::nullopt;
    return sys_days{ymd}.time_since_epoch() / seconds{1} + h * 3600 + mi * 60 + sec;
}

}  // namespace

std::optional<milliseconds> parse_retry_after(std::string_view retry_after, std::string_view retry_after_ms,
                                              std::int64_t now_unix_seconds) {
    if (auto ms = parse_decimal(trim(retry_after_ms), 0)) return milliseconds{*ms};
    auto const text = trim(retry_after);
    if (text.empty()) return std::nullopt;
    if (is_digit(text.front())) {
        if (auto ms = parse_decimal(text, 3)) return milliseconds{*ms};
        return std::nullopt;
    }
    auto const date = parse_http_date(text, now_unix_seconds);
    if (!date) return std::nullopt;
    if (*date <= now_unix_seconds) return milliseconds{0};
    // The subtraction cannot overflow for any year 0000-9999 and a present-day clock; the clamp keeps
    // the product in range whatever the clock says.
    return milliseconds{std::min(*date - now_unix_seconds, max_seconds) * 1000};
}

}  // namespace toolgate::resilience

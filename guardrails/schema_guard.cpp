// schema-guard: the answer (the assistant parts' text, joined) must be one JSON value that validates
// against a JSON Schema: the plugin's (`schema` inline or `schema_file`) and, when the request asked
// for one, the client's (`response_format: {type: "json_schema", json_schema: {schema: ...}}`). With
// `response_format: {type: "json_object"}` the answer must be a JSON object. With no schema from
// either side there is nothing to check and every answer passes; so does an answer with no text
// (a turn of tool calls only). Code fences around the JSON are not stripped: the client asked for
// JSON and gets exactly what was checked.
//
// Validation is valijson 1.0 (header-only, from Debian's libvalijson-dev), which implements draft 7
// (and 4, 3). What that means per draft:
// - Draft 7: every validation keyword is checked: type, enum, const, the numeric and string and
//   array and object bounds, multipleOf, required, properties, patternProperties,
//   additionalProperties, dependencies, propertyNames, items (one schema or a tuple),
//   additionalItems, contains, uniqueItems, allOf, anyOf, oneOf, not, if/then/else, boolean
//   schemas and local $ref ("#/definitions/x", "#/$defs/x", any JSON pointer into the document).
// - 2020-12 (and 2019-09; also what a schema without $schema is read as): translated to draft 7
//   first: prefixItems + items become items (tuple) + additionalItems; dependentRequired and
//   dependentSchemas become dependencies; $ref with sibling keywords becomes allOf [{$ref}, rest]
//   (draft 7 would ignore the siblings). $defs works through JSON pointers.
//   NOT checked: unevaluatedProperties, unevaluatedItems, minContains, maxContains, $dynamicRef,
//   $recursiveRef, and $ref to an $anchor name or to another document (a $ref that valijson cannot
//   resolve makes the schema unusable); $id does not move the base URI (valijson reads draft 4's
//   `id`), which matters only to relative $refs. A configured schema using one of the unchecked keywords is a
//   start-up error (it would not be enforced); a client's schema is checked for everything else
//   (the provider enforced its own subset already).
// - format: date, time and date-time are asserted (RFC 3339, with month lengths and leap years), as
//   valijson does; every other format is an annotation, as 2020-12 says by default.
// - Regular expressions (pattern, patternProperties) run on RE2, not on valijson's std::regex: a
//   schema's pattern must be RE2 syntax (ECMA-262 without backreferences and lookaround), and no
//   pattern can stall a worker or overflow its stack on a long string. patternProperties is
//   evaluated by specialising the schema for the answer at hand (each of the answer's property
//   names that a pattern matches becomes a `properties` entry with allOf of its schemas), so a
//   $ref into a patternProperties member is not supported.
// Bounded work: every schema object carries a counter (first in its allOf, so a $ref into an allOf
// member is off by one and not supported), so a schema whose validation explodes (nested anyOf over
// a recursive $ref, a schema applying itself to the same value) stops after a budget of visits
// proportional to the answer's size or 1 MiB of stack (rule schema_too_complex); JSON deeper than 64
// levels is refused when parsed. The whole answer is validated once without collecting errors and,
// only when invalid, again with them.
//
// valijson is built with VALIJSON_USE_EXCEPTIONS=1 (without it a bad schema aborts the process);
// this is the only file that includes it, so that definition cannot disagree with another's.
#define VALIJSON_USE_EXCEPTIONS 1

// valijson's own pattern and format visitors (which this file replaces, but which are compiled all
// the same) build std::regex, where GCC 12 reports a false -Wmaybe-uninitialized inside
// std::function (https://gcc.gnu.org/bugzilla/show_bug.cgi?id=105616). The warning is issued at
// libstdc++'s lines, so it is silenced before the first include, for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "guardrails/schema_guard.hpp"

#include <re2/re2.h>

#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <valijson/adapters/boost_json_adapter.hpp>
#include <valijson/constraint_builder.hpp>
#include <valijson/constraints/concrete_constraints.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include <cstdint>
#include <set>

#include "guardrails/config_util.hpp"
#include "guardrails/factories.hpp"

namespace toolgate::guardrails {

namespace {

namespace vc = valijson::constraints;

constexpr int max_depth = 64;
constexpr std::size_t line_cap = 300;  // bytes of one error line (a property name may be huge)

// The keywords the rewritten schema carries for the constraints valijson must not evaluate itself.
constexpr std::string_view kw_budget = "$toolgate:budget";
constexpr std::string_view kw_pattern = "$toolgate:pattern";
constexpr std::string_view kw_format = "$toolgate:format";
constexpr std::string_view kw_pattern_properties = "$toolgate:patternProperties";
constexpr std::string_view kw_site = "$toolgate:site";

// A schema that cannot be used; what() names the place ("/properties/a/pattern: ...").
struct bad_schema : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---- bounded work ------------------------------------------------------------------------------

// The validation running on this thread counts its subschema visits here (valijson offers no other
// hook; the schema itself is shared and immutable, so the count cannot live in it). Counting bounds
// time; the stack is bounded by where the first visit started: a schema that applies itself to the
// same value ({"allOf": [{"$ref": "#"}]}) recurses without descending into the answer.
constexpr std::uintptr_t stack_cap = 1 << 20;  // bytes; worker threads have 8 MiB
struct work_budget {
    std::size_t left;
    std::uintptr_t stack_base = 0;
};
thread_local work_budget* active_budget = nullptr;
struct budget_exceeded {};

struct budget_scope {
    explicit budget_scope(work_budget& b) : saved_(active_budget) { active_budget = &b; }
    ~budget_scope() { active_budget = saved_; }
    budget_scope(budget_scope const&) = delete;
    budget_scope& operator=(budget_scope const&) = delete;
    work_budget* saved_;
};

// ---- constraints valijson runs for us ------------------------------------------------------------

class budget_constraint final : public vc::PolyConstraint {
public:
    bool validate(valijson::adapters::Adapter const&, std::vector<std::string> const&,
                  valijson::ValidationResults*) const override {
        if (active_budget) {
            if (active_budget->left == 0) throw budget_exceeded{};
            --active_budget->left;
            // The machine frame, not a local's address: under ASan's detect_stack_use_after_return
            // locals live on a heap "fake stack" and their addresses say nothing about depth.
            auto at = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
            auto& base = active_budget->stack_base;
            if (base == 0) base = at;
            if ((base > at ? base - at : at - base) > stack_cap) throw budget_exceeded{};
        }
        return true;
    }

private:
    Constraint* cloneInto(void* p) const override { return new (p) budget_constraint(*this); }
    std::size_t sizeOf() const override { return sizeof(budget_constraint); }
};

class pattern_constraint final : public vc::PolyConstraint {
public:
    explicit pattern_constraint(std::shared_ptr<RE2 const> re) : re_(std::move(re)) {}
    bool validate(valijson::adapters::Adapter const& target, std::vector<std::string> const& context,
                  valijson::ValidationResults* results) const override {
        if (!target.isString()) return true;
        std::string s;
        target.getString(s);
        if (RE2::PartialMatch(s, *re_)) return true;
        if (results) results->pushError(context, "String does not match the 'pattern' constraint.");
        return false;
    }

private:
    Constraint* cloneInto(void* p) const override { return new (p) pattern_constraint(*this); }
    std::size_t sizeOf() const override { return sizeof(pattern_constraint); }
    std::shared_ptr<RE2 const> re_;
};

bool digits(std::string_view s, std::size_t at, std::size_t n, int& out) {
    if (at + n > s.size()) return false;
    out = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        out = out * 10 + (s[i] - '0');
    }
    return true;
}

// RFC 3339 full-date: YYYY-MM-DD with the month's length (leap years included).
bool is_date(std::string_view s) {
    int y, m, d;
    if (s.size() != 10 || !digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, m) || s[7] != '-' ||
        !digits(s, 8, 2, d))
        return false;
    if (m < 1 || m > 12 || d < 1) return false;
    static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= days[m - 1] + (m == 2 && leap ? 1 : 0);
}

// RFC 3339 full-time: HH:MM:SS[.frac](Z|+HH:MM|-HH:MM), second 60 allowed (leap second).
bool is_time(std::string_view s) {
    int h, mi, se;
    if (!digits(s, 0, 2, h) || s.size() < 9 || s[2] != ':' || !digits(s, 3, 2, mi) || s[5] != ':' ||
        !digits(s, 6, 2, se))
        return false;
    if (h > 23 || mi > 59 || se > 60) return false;
    std::size_t i = 8;
    if (i < s.size() && s[i] == '.') {
        std::size_t start = ++i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
        if (i == start) return false;
    }
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) return i + 1 == s.size();
    int oh, om;
    if (i + 6 != s.size() || (s[i] != '+' && s[i] != '-') || !digits(s, i + 1, 2, oh) || s[i + 3] != ':' ||
        !digits(s, i + 4, 2, om))
        return false;
    return oh <= 23 && om <= 59;
}

bool is_date_time(std::string_view s) {
    return s.size() > 11 && (s[10] == 'T' || s[10] == 't') && is_date(s.substr(0, 10)) && is_time(s.substr(11));
}

enum class format_kind { date, time, date_time };

class format_constraint final : public vc::PolyConstraint {
public:
    explicit format_constraint(format_kind f) : f_(f) {}
    bool validate(valijson::adapters::Adapter const& target, std::vector<std::string> const& context,
                  valijson::ValidationResults* results) const override {
        if (!target.isString()) return true;
        std::string s;
        target.getString(s);
        bool ok = f_ == format_kind::date ? is_date(s) : f_ == format_kind::time ? is_time(s) : is_date_time(s);
        if (!ok && results)
            results->pushError(context, f_ == format_kind::date   ? "String should be a valid date (YYYY-MM-DD)."
                                        : f_ == format_kind::time ? "String should be a valid time (HH:MM:SSZ)."
                                                                  : "String should be a valid date-time (RFC 3339).");
        return ok;
    }

private:
    Constraint* cloneInto(void* p) const override { return new (p) format_constraint(*this); }
    std::size_t sizeOf() const override { return sizeof(format_constraint); }
    format_kind f_;
};

using pattern_table = std::vector<std::shared_ptr<RE2 const>>;

class budget_builder final : public valijson::ConstraintBuilder {
public:
    vc::Constraint* make(valijson::adapters::Adapter const&) const override { return new budget_constraint(); }
};

class pattern_builder final : public valijson::ConstraintBuilder {
public:
    explicit pattern_builder(pattern_table const& t) : table_(t) {}
    vc::Constraint* make(valijson::adapters::Adapter const& node) const override {
        return new pattern_constraint(table_.at(static_cast<std::size_t>(node.asInteger())));
    }

private:
    pattern_table const& table_;
};

class format_builder final : public valijson::ConstraintBuilder {
public:
    vc::Constraint* make(valijson::adapters::Adapter const& node) const override {
        auto f = node.asString();
        return new format_constraint(f == "date" ? format_kind::date
                                     : f == "time" ? format_kind::time
                                                   : format_kind::date_time);
    }
};

// ---- preparing a schema for valijson -------------------------------------------------------------

std::string escape_pointer(std::string_view key) {
    std::string out;
    for (char c : key) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else out += c;
    }
    return out;
}

// A schema object that had patternProperties (it carries kw_site: its index): its patterns, each
// RE2 and the member's key under kw_pattern_properties whose schema applies. Found by marker, not
// by path, as the 2020-12 translation copies subschemas to new places.
struct pattern_site {
    std::vector<std::pair<std::shared_ptr<RE2 const>, std::string>> patterns;
};

// A schema rewritten for valijson: our constraints replace pattern, patternProperties and format;
// 2020-12 keywords are translated to draft 7; every schema object counts against the budget.
struct prepared {
    json::value doc;
    std::shared_ptr<pattern_table> patterns = std::make_shared<pattern_table>();
    std::vector<pattern_site> sites;
    std::vector<std::string> unchecked;  // "unevaluatedProperties at /properties/a"
};

std::shared_ptr<RE2 const> compile_pattern(std::string_view p, std::string const& where) {
    RE2::Options o;
    o.set_log_errors(false);
    o.set_never_capture(true);
    auto re = std::make_shared<RE2 const>(re2::StringPiece(p.data(), p.size()), o);
    if (!re->ok()) throw bad_schema(where + ": the pattern is not RE2 syntax (" + re->error() + ")");
    return re;
}

// valijson evaluates allOf before every other keyword of a schema (and custom keywords last), so
// the counter goes first in allOf: it runs before a recursion through this schema can.
void count_first(json::object& o) {
    json::object counter;
    counter[kw_budget] = true;
    auto& all = o["allOf"];
    if (!all.is_array()) all = json::array();
    all.get_array().insert(all.get_array().begin(), json::value(std::move(counter)));
}

class preparer {
public:
    explicit preparer(prepared& p, bool y2020) : p_(p), y2020_(y2020) {}

    void walk(json::value& v, std::string const& ptr, int depth) {
        if (v.is_bool()) return;
        if (!v.is_object()) throw bad_schema(at(ptr) + ": a schema must be an object or a boolean");
        if (depth > max_depth) throw bad_schema(at(ptr) + ": the schema nests too deep");
        auto& o = v.as_object();
        for (auto k : {"properties", "patternProperties", "definitions", "$defs", "dependentSchemas"})
            walk_map(o, k, ptr, depth, false);
        walk_map(o, "dependencies", ptr, depth, true);
        for (auto k : {"prefixItems", "allOf", "anyOf", "oneOf"}) walk_list(o, k, ptr, depth);
        if (auto* it = o.if_contains("items"); it && it->is_array()) walk_list(o, "items", ptr, depth);
        for (auto k : {"items", "additionalItems", "additionalProperties", "contains", "propertyNames", "if", "then",
                       "else", "not", "unevaluatedItems", "unevaluatedProperties"})
            if (auto* s = o.if_contains(k); s && !s->is_array()) walk(*s, ptr + "/" + k, depth + 1);

        for (auto k : {"unevaluatedProperties", "unevaluatedItems", "minContains", "maxContains", "$dynamicRef",
                       "$recursiveRef"})
            if (o.contains(k)) p_.unchecked.push_back(std::string(k) + " at " + at(ptr));

        if (auto* pat = o.if_contains("pattern"); pat && pat->is_string()) {
            p_.patterns->push_back(compile_pattern(pat->get_string(), at(ptr + "/pattern")));
            o.erase("pattern");
            o[kw_pattern] = static_cast<std::int64_t>(p_.patterns->size() - 1);
        }
        if (auto* f = o.if_contains("format")) {
            json::value format = *f;  // o[...] below may move o's members
            o.erase("format");        // any other format is an annotation (and valijson would misread it)
            if (format.is_string() && (format.get_string() == "date" || format.get_string() == "time" ||
                                       format.get_string() == "date-time"))
                o[kw_format] = std::move(format);
        }
        if (auto* pp = o.if_contains("patternProperties"); pp && pp->is_object()) {
            pattern_site site;
            for (auto const& m : pp->get_object())
                site.patterns.emplace_back(
                    compile_pattern(m.key(), at(ptr + "/patternProperties/" + escape_pointer(m.key()))),
                    std::string(m.key()));
            json::value moved = std::move(*pp);
            o.erase("patternProperties");
            o[kw_pattern_properties] = std::move(moved);
            o[kw_site] = static_cast<std::int64_t>(p_.sites.size());
            p_.sites.push_back(std::move(site));
        }
        if (y2020_) translate_2020(o);
        count_first(o);
    }


private:
    static std::string at(std::string const& ptr) { return ptr.empty() ? "(root)" : ptr; }

    void walk_map(json::object& o, std::string_view k, std::string const& ptr, int depth, bool skip_non_schemas) {
        auto* m = o.if_contains(k);
        if (!m) return;
        if (!m->is_object()) throw bad_schema(at(ptr + "/" + std::string(k)) + ": must be an object");
        for (auto& e : m->get_object()) {
            if (skip_non_schemas && !e.value().is_object() && !e.value().is_bool()) continue;
            walk(e.value(), ptr + "/" + std::string(k) + "/" + escape_pointer(e.key()), depth + 1);
        }
    }

    void walk_list(json::object& o, std::string_view k, std::string const& ptr, int depth) {
        auto* a = o.if_contains(k);
        if (!a) return;
        if (!a->is_array()) throw bad_schema(at(ptr + "/" + std::string(k)) + ": must be an array of schemas");
        auto& arr = a->get_array();
        for (std::size_t i = 0; i < arr.size(); ++i)
            walk(arr[i], ptr + "/" + std::string(k) + "/" + std::to_string(i), depth + 1);
    }

    // 2020-12 keywords in their draft 7 form (the originals stay, ignored, so JSON pointers into
    // them still resolve).
    static void translate_2020(json::object& o) {
        if (auto* pi = o.if_contains("prefixItems"); pi && pi->is_array()) {
            json::value tuple = *pi;  // copies first: o[...] may move o's members
            if (auto* it = o.if_contains("items")) {
                json::value rest = *it;
                o["additionalItems"] = std::move(rest);
            }
            o["items"] = std::move(tuple);
        }
        auto* dr = o.if_contains("dependentRequired");
        auto* ds = o.if_contains("dependentSchemas");
        if ((dr && dr->is_object()) || (ds && ds->is_object())) {
            json::object deps;
            if (auto* d = o.if_contains("dependencies"); d && d->is_object()) deps = d->get_object();
            auto add = [&deps](std::string_view name, json::value v) {
                auto* old = deps.if_contains(name);
                if (!old) {
                    deps[name] = std::move(v);
                    return;
                }
                json::array both;
                for (json::value* x : {old, &v}) {
                    if (x->is_array()) {
                        json::object req;
                        req["required"] = *x;
                        both.emplace_back(std::move(req));
                    } else {
                        both.push_back(*x);
                    }
                }
                json::object all;
                all["allOf"] = std::move(both);
                deps[name] = std::move(all);
            };
            if (dr && dr->is_object())
                for (auto const& e : dr->get_object()) add(e.key(), e.value());
            if (ds && ds->is_object())
                for (auto const& e : ds->get_object()) add(e.key(), e.value());
            o["dependencies"] = std::move(deps);
        }
        if (auto* r = o.if_contains("$ref"); r && o.size() > 1) {
            json::object ref;
            ref["$ref"] = *r;
            o.erase("$ref");
            auto& all = o["allOf"];
            if (!all.is_array()) all = json::array();
            all.get_array().emplace_back(std::move(ref));
        }
    }

    prepared& p_;
    bool y2020_;
};

// Draft 7 when the schema says so; 2020-12 (which reads draft 2019-09 right too) otherwise.
bool reads_as_2020(json::value const& schema) {
    if (!schema.is_object()) return true;
    auto const* s = schema.get_object().if_contains("$schema");
    if (!s || !s->is_string()) return true;
    std::string_view uri = s->get_string();
    for (auto old : {"draft-07", "draft-06", "draft-04", "draft-03"})
        if (uri.find(old) != std::string_view::npos) return false;
    return true;
}

prepared prepare(json::value const& schema) {
    prepared p;
    p.doc = schema;
    preparer(p, reads_as_2020(schema)).walk(p.doc, "", 0);
    return p;
}

std::unique_ptr<valijson::Schema> compile(json::value const& doc, pattern_table const& patterns) {
    auto schema = std::make_unique<valijson::Schema>();
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    parser.addConstraintBuilder(std::string(kw_budget), new budget_builder());
    parser.addConstraintBuilder(std::string(kw_pattern), new pattern_builder(patterns));
    parser.addConstraintBuilder(std::string(kw_format), new format_builder());
    try {
        valijson::adapters::BoostJsonAdapter adapter(doc);
        parser.populateSchema(adapter, *schema);
    } catch (std::exception const& e) {
        throw bad_schema(std::string("valijson cannot use the schema: ") + e.what());
    }
    return schema;
}

// One schema, ready to validate with: compiled once when it has no patternProperties, or per answer
// (specialised to the answer's property names) when it has.
struct ready_schema {
    prepared prep;
    std::unique_ptr<valijson::Schema> compiled;  // null when it has pattern sites
};

ready_schema make_ready(json::value const& schema) {
    ready_schema r{prepare(schema), nullptr};
    if (r.prep.sites.empty()) r.compiled = compile(r.prep.doc, *r.prep.patterns);
    return r;
}

void collect_keys(json::value const& v, std::set<std::string_view>& keys) {
    if (v.is_object()) {
        for (auto const& m : v.get_object()) {
            keys.insert(m.key());
            collect_keys(m.value(), keys);
        }
    } else if (v.is_array()) {
        for (auto const& e : v.get_array()) collect_keys(e, keys);
    }
}

// patternProperties for this answer: each property name in it that a pattern matches gets a
// `properties` entry requiring the schemas of every pattern it matches (and its own, if any), which
// is what patternProperties means; names the answer does not contain need no entry.
void specialise_in(json::value& v, std::vector<pattern_site> const& sites, std::set<std::string_view> const& keys) {
    if (v.is_array()) {
        for (auto& e : v.get_array()) specialise_in(e, sites, keys);
        return;
    }
    if (!v.is_object()) return;
    auto& o = v.get_object();
    for (auto& m : o) specialise_in(m.value(), sites, keys);
    auto const* idx = o.if_contains(kw_site);
    if (!idx || !idx->is_int64() || !o.contains(kw_pattern_properties)) return;
    auto n = static_cast<std::size_t>(idx->get_int64());
    if (n >= sites.size()) return;
    auto& props = o["properties"];  // before taking references into o: this may move its members
    if (!props.is_object()) props = json::object();
    auto const& ppv = o.at(kw_pattern_properties);
    if (!ppv.is_object()) return;
    auto const& pp = ppv.get_object();
    for (auto key : keys) {
        json::array all;
        for (auto const& [re, member] : sites[n].patterns)
            if (RE2::PartialMatch(re2::StringPiece(key.data(), key.size()), *re)) all.push_back(pp.at(member));
        if (all.empty()) continue;
        if (auto* own = props.get_object().if_contains(key)) all.insert(all.begin(), *own);
        json::object s;
        s["allOf"] = std::move(all);
        count_first(s);
        props.get_object()[key] = std::move(s);
    }
}

std::unique_ptr<valijson::Schema> specialise(ready_schema const& r, json::value const& answer) {
    std::set<std::string_view> keys;
    collect_keys(answer, keys);
    json::value doc = r.prep.doc;
    specialise_in(doc, r.prep.sites, keys);
    return compile(doc, *r.prep.patterns);
}

// "/items/0/name" from valijson's context ["<root>", "[items]", "[0]", "[name]"].
std::string pointer_of(std::vector<std::string> const& context) {
    std::string out;
    for (auto const& c : context) {
        if (c == "<root>") continue;
        std::string_view k = c;
        if (k.size() >= 2 && k.front() == '[' && k.back() == ']') k = k.substr(1, k.size() - 2);
        out += "/" + escape_pointer(k);
    }
    return out.empty() ? "(root)" : out;
}

// A line a client or the model can read: bounded, one line, valid UTF-8 at the cut.
std::string one_line(std::string s) {
    for (auto& c : s)
        if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    if (s.size() > line_cap) {
        std::size_t cut = line_cap;
        while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
        s.resize(cut);
        s += "...";
    }
    return s;
}

// The messages valijson adds above a nested error; said already by the error below them.
bool is_wrapper(std::string const& d) {
    for (auto w : {"Failed to validate item #", "Failed to validate against schema associated with property name",
                   "Failed to validate against additional properties schema", "Failed to validate against child schema #",
                   "Failed to validate against dependent schema"})
        if (d.rfind(w, 0) == 0) return true;
    return false;
}

enum class result { valid, invalid, too_complex };

result validate(valijson::Subschema const& schema, json::value const& answer, std::size_t budget,
                std::size_t max_errors, std::vector<std::string>& lines, std::size_t& total) {
    valijson::adapters::BoostJsonAdapter target(answer);
    valijson::ValidationResults results;
    bool ok;
    try {
        // First without collecting errors (valijson then stops at the first failure and builds no
        // messages), then, for an invalid answer only, again with them.
        {
            valijson::Validator validator(valijson::Validator::kStrongTypes);
            work_budget b{budget};
            budget_scope scope(b);
            ok = validator.validate(schema, target, nullptr);
        }
        if (ok) return result::valid;
        valijson::Validator validator(valijson::Validator::kStrongTypes);
        work_budget b{budget};
        budget_scope scope(b);
        ok = validator.validate(schema, target, &results);
    } catch (budget_exceeded const&) {
        return result::too_complex;
    } catch (std::exception const&) {
        lines.push_back("(root): the answer could not be validated against this schema");
        ++total;
        return result::invalid;
    }
    if (ok) return result::valid;
    bool has_specific = false;
    for (auto const& e : results)
        if (!is_wrapper(e.description)) has_specific = true;
    std::size_t before = total;
    for (auto const& e : results) {
        if (has_specific && is_wrapper(e.description)) continue;
        if (lines.size() < max_errors) lines.push_back(one_line(pointer_of(e.context) + ": " + e.description));
        ++total;
    }
    if (total == before) {  // invalid with no message: say so rather than nothing
        lines.push_back("(root): the answer does not match the schema");
        ++total;
    }
    return result::invalid;
}

// What the answer is checked against, for one request.
struct request_schema {
    bool json_required = false;  // response_format json_object or json_schema
    bool object_required = false;
    json::value const* schema = nullptr;
};

request_schema from_body(json::object const* body) {
    request_schema r;
    if (!body) return r;
    auto const* rf = body->if_contains("response_format");
    if (!rf || !rf->is_object()) return r;
    auto const* type = rf->get_object().if_contains("type");
    if (!type || !type->is_string()) return r;
    if (type->get_string() == "json_object") {
        r.json_required = r.object_required = true;
    } else if (type->get_string() == "json_schema") {
        r.json_required = true;
        auto const* js = rf->get_object().if_contains("json_schema");
        if (js && js->is_object())
            if (auto const* s = js->get_object().if_contains("schema"); s && (s->is_object() || s->is_bool()))
                r.schema = s;
    }
    return r;
}

json::value parse_json(std::string_view text, std::string& error) {
    json::parse_options opts;
    opts.max_depth = max_depth;
    json::parser p({}, opts);
    boost::system::error_code ec;
    std::size_t n = p.write(text.data(), text.size(), ec);
    if (ec) {
        error = ec == json::error::too_deep ? "it nests deeper than " + std::to_string(max_depth) + " levels"
                                            : ec.message() + " at byte " + std::to_string(n);
        return nullptr;
    }
    return p.release();
}

class schema_guard final : public guardrail {
public:
    schema_guard(std::optional<ready_schema> configured, bool repair, std::size_t max_errors)
        : configured_(std::move(configured)), repair_(repair), max_errors_(max_errors) {}

    std::string_view name() const override { return "schema-guard"; }
    std::vector<part_kind> default_apply_to() const override { return {part_kind::assistant}; }
    std::size_t window() const override { return 0; }  // the gateway collects the whole answer first
    bool repair() const { return repair_; }

    verdict check(std::vector<text_part>& parts, json::object* body, scope&) const override {
        verdict v;
        auto req = from_body(body);
        if (!configured_ && !req.json_required) return v;
        std::string answer;
        std::size_t first = parts.size();
        for (std::size_t i = 0; i < parts.size(); ++i) {
            if (parts[i].kind != part_kind::assistant) continue;
            if (first == parts.size()) first = i;
            answer += parts[i].text;
        }
        if (answer.find_first_not_of(" \t\r\n") == std::string::npos) return v;
        v.part = first;

        std::string error;
        json::value doc = parse_json(answer, error);
        if (!error.empty()) return block(v, "not_json", "the answer is not JSON: " + error);

        std::vector<std::string> lines;
        std::size_t total = 0;
        // The budget grows with the answer: a plain schema visits a schema object about once per 8
        // bytes of answer (a 1 MB list of small objects: 130,000 visits), so this leaves room.
        std::size_t budget = 50'000 + answer.size();
        if (req.object_required && !doc.is_object()) {
            lines.push_back("(root): the answer must be a JSON object (response_format json_object)");
            ++total;
        }
        if (configured_) {
            std::unique_ptr<valijson::Schema> special;
            try {
                if (!configured_->compiled) special = specialise(*configured_, doc);
            } catch (bad_schema const&) {
                // The configured schema compiled at start-up; only its specialisation can fail here.
                return block(v, "schema_too_complex", "the schema could not be applied to this answer");
            }
            auto const& s = configured_->compiled ? *configured_->compiled : *special;
            if (validate(s, doc, budget, max_errors_, lines, total) == result::too_complex)
                return block(v, "schema_too_complex", "validating the answer needed more work than allowed");
        }
        if (req.schema) {
            std::unique_ptr<valijson::Schema> client;
            try {
                auto r = make_ready(*req.schema);
                client = r.compiled ? std::move(r.compiled) : specialise(r, doc);
            } catch (bad_schema const& e) {
                return block(v, "response_format_schema",
                             one_line(std::string("the request's response_format schema cannot be used: ") + e.what()));
            }
            if (validate(*client, doc, budget, max_errors_, lines, total) == result::too_complex)
                return block(v, "schema_too_complex", "validating the answer needed more work than allowed");
        }
        if (total == 0) return v;
        std::string detail;
        for (auto const& l : lines) detail += (detail.empty() ? "" : "\n") + l;
        if (total > lines.size()) detail += "\n... and " + std::to_string(total - lines.size()) + " more";
        return block(v, "schema", detail);
    }

private:
    static verdict block(verdict v, std::string rule, std::string detail) {
        v.what = outcome::block;
        v.rule = std::move(rule);
        v.detail = std::move(detail);
        return v;
    }

    std::optional<ready_schema> configured_;
    bool repair_;
    std::size_t max_errors_;
};

}  // namespace

bool wants_repair(guardrail const& g) {
    auto const* s = dynamic_cast<schema_guard const*>(&g);
    return s && s->repair();
}

bool is_repairable(verdict const& v) { return v.what == outcome::block && (v.rule == "schema" || v.rule == "not_json"); }

std::unique_ptr<guardrail> make_schema_guard(json::object const& config, build_context const& ctx) {
    cfg::only_keys(config, {"schema", "schema_file", "on_failure", "max_errors"});
    bool repair = cfg::choice(config, "on_failure", {"reject", "repair"}, "reject") == "repair";
    double me = cfg::number(config, "max_errors", 10, 1, 1000);
    if (me != static_cast<double>(static_cast<std::size_t>(me)))
        throw config_error(cfg::key_of("max_errors"), "'max_errors' must be a whole number");

    auto const* inline_schema = config.if_contains("schema");
    if (inline_schema && inline_schema->is_null()) inline_schema = nullptr;
    auto file = cfg::string(config, "schema_file");
    if (inline_schema && file)
        throw config_error(cfg::key_of("schema_file"), "give 'schema' or 'schema_file', not both");

    std::optional<ready_schema> configured;
    if (inline_schema || file) {
        std::string key = inline_schema ? "schema" : "schema_file";
        json::value doc;
        if (inline_schema) {
            if (!inline_schema->is_object() && !inline_schema->is_bool())
                throw config_error(cfg::key_of(key), "'schema' must be a JSON Schema (an object)");
            doc = *inline_schema;
        } else {
            std::string text = cfg::read_file(ctx, *file, key);
            std::string error;
            doc = parse_json(text, error);
            if (!error.empty()) throw config_error(cfg::key_of(key), "'" + *file + "' is not JSON: " + error);
        }
        try {
            configured = make_ready(doc);
        } catch (bad_schema const& e) {
            throw config_error(cfg::key_of(key), "the schema cannot be used: " + std::string(e.what()));
        }
        if (!configured->prep.unchecked.empty())
            throw config_error(cfg::key_of(key), "the schema uses " + configured->prep.unchecked.front() +
                                                     ", which valijson 1.0 does not check (it would not be enforced)");
    }
    return std::make_unique<schema_guard>(std::move(configured), repair, static_cast<std::size_t>(me));
}

struct json_schema::impl {
    ready_schema ready;
};

json_schema::json_schema(json::value const& schema) {
    try {
        impl_ = std::make_unique<impl>(impl{make_ready(schema)});
    } catch (bad_schema const& e) {
        throw config_error("schema", e.what());
    }
}

json_schema::~json_schema() = default;

std::vector<std::string> json_schema::validate(json::value const& doc, std::size_t max_errors) const {
    std::vector<std::string> lines;
    std::size_t total = 0;
    std::unique_ptr<valijson::Schema> special;
    try {
        if (!impl_->ready.compiled) special = specialise(impl_->ready, doc);
    } catch (bad_schema const&) {
        lines.emplace_back("(root): the schema could not be applied to this document");
        return lines;
    }
    auto const& s = impl_->ready.compiled ? *impl_->ready.compiled : *special;
    auto budget = 50'000 + json::serialize(doc).size();
    if (::toolgate::guardrails::validate(s, doc, budget, max_errors, lines, total) == result::too_complex) {
        lines.assign(1, "(root): validating needed more work than allowed");
        return lines;
    }
    if (total > lines.size()) lines.push_back("... and " + std::to_string(total - lines.size()) + " more");
    return lines;
}

}  // namespace toolgate::guardrails

// Not compiled: the five constructs scripts/check_coroutines.py must report (tests/CMakeLists.txt
// runs it on this folder and expects it to fail).
asio::awaitable<void> f(int x) {
    auto o = json::object{{"a", 1}};
    for (auto k : {"a", "b"}) use(k);
    co_await g(api_error{400, "x"});
    if (co_await h() && x) co_return;
    co_await reply(x ? make_error() : other_error());
    // json::object{{"in", "a comment"}} is fine
    auto ok = [](int v) { return v; };
    co_return;
}
void plain() { auto o = json::object{{"a", 1}}; }

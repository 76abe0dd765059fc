// Router: maps method + path to a handler. Paths match exactly ("/v1/lag")
// or by prefix ("/v1/streams/" matches "/v1/streams/x/rebuild"); the most
// specific match wins (exact before prefix, longer prefix before shorter).
// No match: 404 {"error":"not found"}. A path that matches but not for this
// method: 405 {"error":"method not allowed"} with an Allow header. HEAD is
// served by the GET handler (the server drops the body).
//
// Handlers run on the loop thread, one request at a time per connection, and
// must not block. A synchronous Handler returns its Response. An
// AsyncHandler receives a Responder to call exactly once, later, on the loop
// thread (e.g. when a worker's answer comes back through the loop's queue);
// while it is outstanding the connection reads no further request. Calling a
// Responder after its connection has closed is a harmless no-op; calling it
// twice ignores the second call.
// The Request passed to a handler is valid only during the call.
// Lifetime: register everything before the Server starts; the Router must
// outlive every Server using it. Not thread-safe (loop thread only).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "http/request.h"
#include "http/response.h"

namespace isthmus::http {

using Handler = std::function<Response(const Request&)>;
using Responder = std::function<void(Response)>;
using AsyncHandler = std::function<void(const Request&, Responder)>;

class Router {
 public:
  // Exact path.
  void add(std::string method, std::string path, Handler handler);
  // Every path starting with `prefix`.
  void add_prefix(std::string method, std::string prefix, Handler handler);
  void add_async(std::string method, std::string path, AsyncHandler handler);
  void add_async_prefix(std::string method, std::string prefix, AsyncHandler handler);

  // Routes `req` and eventually calls `respond` once (immediately for
  // synchronous handlers, 404 and 405). A handler that throws gets a 500.
  void dispatch(const Request& req, Responder respond) const;

  // Methods accepted for `path` ("GET, HEAD, POST"), "" if the path is unknown.
  std::string allowed_methods(std::string_view path) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    bool prefix;
    AsyncHandler handler;
  };

  void add_route(std::string method, std::string pattern, bool prefix, AsyncHandler handler);
  // Higher is more specific; -1 when `r` does not match `path`.
  static long specificity(const Route& r, std::string_view path);

  std::vector<Route> routes_;
};

}  // namespace isthmus::http

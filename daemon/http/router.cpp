#include "http/router.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <set>

#include <spdlog/spdlog.h>

namespace isthmus::http {

void Router::add(std::string method, std::string path, Handler handler) {
  add_async(std::move(method), std::move(path),
            [h = std::move(handler)](const Request& req, Responder respond) { respond(h(req)); });
}

void Router::add_prefix(std::string method, std::string prefix, Handler handler) {
  add_async_prefix(std::move(method), std::move(prefix),
                   [h = std::move(handler)](const Request& req, Responder respond) {
                     respond(h(req));
                   });
}

void Router::add_async(std::string method, std::string path, AsyncHandler handler) {
  add_route(std::move(method), std::move(path), false, std::move(handler));
}

void Router::add_async_prefix(std::string method, std::string prefix, AsyncHandler handler) {
  add_route(std::move(method), std::move(prefix), true, std::move(handler));
}

void Router::add_route(std::string method, std::string pattern, bool prefix,
                       AsyncHandler handler) {
  routes_.push_back(Route{std::move(method), std::move(pattern), prefix, std::move(handler)});
}

long Router::specificity(const Route& r, std::string_view path) {
  if (!r.prefix) return r.pattern == path ? static_cast<long>(path.size()) * 2 + 1 : -1;
  if (path.size() < r.pattern.size() || path.substr(0, r.pattern.size()) != r.pattern) return -1;
  return static_cast<long>(r.pattern.size()) * 2;
}

std::string Router::allowed_methods(std::string_view path) const {
  std::set<std::string> methods;
  for (const Route& r : routes_) {
    if (specificity(r, path) < 0) continue;
    methods.insert(r.method);
    if (r.method == "GET") methods.insert("HEAD");
  }
  std::string out;
  for (const std::string& m : methods) {
    if (!out.empty()) out += ", ";
    out += m;
  }
  return out;
}

void Router::dispatch(const Request& req, Responder respond) const {
  // The most specific route for this method; HEAD falls back to GET.
  const Route* best = nullptr;
  long best_score = -1;
  bool path_known = false;
  for (const std::string_view method : {std::string_view(req.method), std::string_view("GET")}) {
    for (const Route& r : routes_) {
      long score = specificity(r, req.path);
      if (score < 0) continue;
      path_known = true;
      if (r.method == method && score > best_score) {
        best = &r;
        best_score = score;
      }
    }
    if (best != nullptr || req.method != "HEAD") break;
  }
  if (best == nullptr) {
    if (!path_known) {
      respond(Response::error(404, "not found"));
    } else {
      Response r = Response::error(405, "method not allowed");
      r.header("Allow", allowed_methods(req.path));
      respond(std::move(r));
    }
    return;
  }
  // Shared so a handler that throws after answering is not answered twice.
  auto answered = std::make_shared<bool>(false);
  Responder once = [answered, respond](Response r) {
    if (*answered) return;
    *answered = true;
    respond(std::move(r));
  };
  try {
    best->handler(req, once);
  } catch (const std::exception& e) {
    spdlog::error("http: handler for {} {} threw: {}", req.method, req.path, e.what());
    once(Response::error(500, "internal error"));
  } catch (...) {
    spdlog::error("http: handler for {} {} threw", req.method, req.path);
    once(Response::error(500, "internal error"));
  }
}

}  // namespace isthmus::http

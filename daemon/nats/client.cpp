#include "nats/client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "nats/cnats_connect.h"
#include "nats/connect_watchdog.h"

namespace isthmus::nats {

namespace {
// cnats' connect timeout: TCP connect, INFO, TLS handshake, CONNECT/PONG.
constexpr int kConnectTimeoutMs = 2000;
}  // namespace

Client::Client(const config::Nats& cfg, loop::Mailbox* mailbox, ClientListener* listener)
    : cfg_(cfg), mailbox_(mailbox), listener_(listener) {}

Client::~Client() { stop(); }

void Client::start() { worker_ = std::thread([this] { worker_main(); }); }

void Client::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_ && !worker_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Client::run(std::function<void(natsConnection*)> job) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) return;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_all();
}

void Client::leave_server(uint64_t generation, std::string reason) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopping_) return;
    leave_reason_ = reason.empty() ? std::string("left") : std::move(reason);
    leave_gen_ = generation;
  }
  cv_.notify_all();
}

size_t Client::queued_jobs() const {
  std::lock_guard<std::mutex> lk(mu_);
  return jobs_.size();
}

void Client::on_closed_cb(natsConnection* nc, void* closure) {
  auto* self = static_cast<Client*>(closure);
  // Only the current connection's: a connection given up during a connect
  // attempt (or one already replaced) may report its close late.
  if (nc != self->current_.load()) return;
  {
    std::lock_guard<std::mutex> lk(self->mu_);
    self->lost_ = true;
  }
  self->cv_.notify_all();
}

void Client::on_error_cb(natsConnection* nc, natsSubscription*, natsStatus err, void*) {
  // The server's words (e.g. the subject of a permissions violation) are the
  // connection's last error (cnats calls this without holding its lock).
  const char* text = nullptr;
  if (nc != nullptr && natsConnection_GetLastError(nc, &text) == err && text != nullptr && *text != '\0') {
    spdlog::warn("nats: asynchronous error: {}: {}", natsStatus_GetText(err), text);
    return;
  }
  spdlog::warn("nats: asynchronous error: {}", natsStatus_GetText(err));
}

Result<natsConnection*> Client::connect_to(const std::string& url_text) {
  auto url = parse_nats_url(url_text);
  if (!url) return url.status();
  natsOptions* raw = nullptr;
  natsStatus s = natsOptions_Create(&raw);
  if (s != NATS_OK) return Status(Code::kInternal, "cnats options: " + connect_failure_text(s));
  std::unique_ptr<natsOptions, void (*)(natsOptions*)> opts(raw, natsOptions_Destroy);
  // One URL per attempt: its own TLS requirement and expected host name.
  const char* servers[] = {url_text.c_str()};
  s = natsOptions_SetServers(opts.get(), servers, 1);
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts.get(), false);
  // Not SendAsap: cnats' flusher thread writes what accumulated within
  // ~1 ms. (This connection carries API requests and advisories only; the
  // replicated messages go through nats/data_conn.h.)
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts.get(), false);
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts.get(), kConnectTimeoutMs);
  if (s == NATS_OK) s = natsOptions_SetName(opts.get(), "isthmusd");
  if (s == NATS_OK) s = natsOptions_SetClosedCB(opts.get(), &Client::on_closed_cb, this);
  if (s == NATS_OK) s = natsOptions_SetErrorHandler(opts.get(), &Client::on_error_cb, this);
  if (s == NATS_OK) s = natsOptions_SetMaxPendingMsgs(opts.get(), 1 << 20);
  // No echo, like the data connection: nothing this daemon publishes comes
  // back to its own subscriptions.
  if (s == NATS_OK) s = natsOptions_SetNoEcho(opts.get(), true);
  // One delivery thread for every subscription (the library's pool, size 1:
  // nats_Open's caller sets it): messages reach the loop in the order the
  // server sent them, across subscriptions.
  if (s == NATS_OK) s = natsOptions_UseGlobalMessageDelivery(opts.get(), true);
  if (s == NATS_OK && !cfg_.credentials.empty()) {
    s = natsOptions_SetUserCredentialsFromFiles(opts.get(), cfg_.credentials.c_str(), nullptr);
  }
  if (s != NATS_OK) return Status(Code::kInvalid, url->display() + ": options: " + connect_failure_text(s));
  if (Status st = apply_tls_policy(opts.get(), *url); !st) return st;
  natsConnection* nc = nullptr;
  // cnats 3.4.1 would never return from a server that stops answering
  // after its INFO (nats/connect_watchdog.h). Its deadline starts before
  // the TCP connect, so a socket connected for longer than the timeout
  // (plus a margin) belongs to an attempt past its deadline.
  ConnectWatchdog watchdog(url->host, url->port, std::chrono::milliseconds(kConnectTimeoutMs + 300));
  s = natsConnection_Connect(&nc, opts.get());
  if (watchdog.disarm()) {
    // (Connected, then shut down by a late scan: the connection is dead.)
    if (nc != nullptr) natsConnection_Destroy(nc);
    return Status(Code::kUnavailable, url->display() + ": the server sent its INFO but did not answer the CONNECT within " +
                                          std::to_string(kConnectTimeoutMs) + " ms");
  }
  if (s != NATS_OK) return Status(Code::kUnavailable, url->display() + ": " + connect_failure_text(s));
  return nc;
}

bool Client::try_connect() {
  // Each configured URL once, from a random one on (cnats would shuffle its
  // server pool likewise); the first that connects wins.
  const size_t n = cfg_.urls.size();
  // After leave_server(): the URL after the one left first, that one last.
  const size_t first = n <= 1            ? 0
                       : next_after_     ? (url_index_ + 1) % n
                                         : std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  // Each URL's reason, reported in the configured order: the same reasons
  // read the same whichever URL the round started from (the log warns
  // again only when they change).
  std::vector<std::string> reasons(n);
  natsConnection* nc = nullptr;
  std::string url_used;
  for (size_t i = 0; i < n && nc == nullptr; ++i) {
    const size_t k = (first + i) % n;
    auto r = connect_to(cfg_.urls[k]);
    if (r) {
      nc = *r;
      url_used = cfg_.urls[k];
      url_index_ = k;
    } else {
      reasons[k] = r.status().message();
    }
  }
  if (nc == nullptr) {
    std::string errors;
    for (const auto& e : reasons) {
      if (!e.empty()) errors += (errors.empty() ? "" : "; ") + e;
    }
    if (errors.empty()) errors = "no URL in nats.urls";
    if (errors != warned_error_) {
      spdlog::warn("nats: cannot connect: {}; retrying", errors);
      warned_error_ = errors;
    }
    mailbox_->post([this, errors] { last_error_ = errors; });
    return false;
  }
  warned_error_.clear();
  next_after_ = false;
  // The closed callback counts from here; a close before this is seen by
  // natsConnection_IsClosed (cnats marks it closed before calling back).
  current_ = nc;
  {
    std::lock_guard<std::mutex> lk(mu_);
    lost_ = natsConnection_IsClosed(nc);
  }
  conn_ = ConnPtr(nc, [](natsConnection* c) { natsConnection_Destroy(c); });
  connected_ = true;
  uint64_t gen = ++generation_;
  ConnPtr copy = conn_;
  char url[256] = {0};
  natsConnection_GetConnectedUrl(nc, url, sizeof(url));
  auto shown = parse_nats_url(url);
  spdlog::info("nats: connected to {} (generation {})", shown ? shown->display() : std::string("?"), gen);
  mailbox_->post([this, copy, gen, url_used] {
    last_error_.clear();
    listener_->on_nats_up(copy, gen, url_used);
  });
  return true;
}

void Client::worker_main() {
  auto backoff = std::chrono::milliseconds(cfg_.reconnect_wait);
  for (;;) {
    // Connect (or reconnect) with backoff; jobs that arrive meanwhile run
    // with a null connection and report unavailability themselves.
    if (!conn_) {
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (stopping_) break;
      }
      if (try_connect()) backoff = std::chrono::milliseconds(cfg_.reconnect_wait);
    }
    std::function<void(natsConnection*)> job;
    bool lost = false;
    std::string leave;
    {
      std::unique_lock<std::mutex> lk(mu_);
      auto wake = [&] { return stopping_ || lost_ || !leave_reason_.empty() || !jobs_.empty(); };
      if (conn_) {
        cv_.wait(lk, wake);
      } else {
        cv_.wait_for(lk, backoff, wake);
      }
      if (stopping_) break;
      leave = std::move(leave_reason_);
      leave_reason_.clear();
      // Only the connection it was meant for: not one made since (nor none).
      if (!conn_ || leave_gen_ != generation_) leave.clear();
      lost = lost_ && conn_ != nullptr;
      if (!lost && leave.empty() && !jobs_.empty()) {
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
    }
    if (!leave.empty() && !lost) {
      // Not cnats' closed callback's to report: current_ is cleared first.
      natsConnection* nc = conn_.get();
      current_ = nullptr;
      connected_ = false;
      char url[256] = {0};
      natsConnection_GetConnectedUrl(nc, url, sizeof(url));
      auto shown = parse_nats_url(url);
      spdlog::warn("nats: leaving {}: {}; {}", shown ? shown->display() : std::string("?"), leave,
                   cfg_.urls.size() > 1 ? "trying the other servers of nats.urls" : "connecting again");
      natsConnection_Close(nc);
      conn_.reset();
      next_after_ = true;
      {
        std::lock_guard<std::mutex> lk(mu_);
        lost_ = false;
      }
      mailbox_->post([this, leave] {
        last_error_ = leave;
        listener_->on_nats_down(leave);
      });
      continue;
    }
    if (lost) {
      if (!leave.empty()) next_after_ = true;  // it was to be left anyway
      connected_ = false;
      current_ = nullptr;
      conn_.reset();
      spdlog::warn("nats: connection lost; reconnecting");
      mailbox_->post([this] {
        last_error_ = "connection lost";
        listener_->on_nats_down("connection lost");
      });
      continue;
    }
    if (!conn_ && !job) {
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
    if (job) job(conn_ ? conn_.get() : nullptr);
  }
  // Shutdown: flush and close. Remaining jobs are dropped.
  if (conn_) {
    natsConnection_FlushTimeout(conn_.get(), 1000);
    natsConnection_Close(conn_.get());
    connected_ = false;
    current_ = nullptr;
    conn_.reset();
  }
  std::lock_guard<std::mutex> lk(mu_);
  jobs_.clear();
}

struct Subscription::Target {
  loop::Mailbox* mailbox;
  Handler handler;
  std::atomic<bool> alive{true};
};

Result<std::unique_ptr<Subscription>> Subscription::create(natsConnection* nc, const std::string& subject,
                                                           loop::Mailbox* mailbox, Handler handler,
                                                           int64_t pending_bytes_limit) {
  std::unique_ptr<Subscription> s(new Subscription());
  s->target_ = std::make_shared<Target>();
  s->target_->mailbox = mailbox;
  s->target_->handler = std::move(handler);
  auto* closure = new std::shared_ptr<Target>(s->target_);
  natsStatus st = natsConnection_Subscribe(&s->sub_, nc, subject.c_str(), &Subscription::on_msg, closure);
  if (st != NATS_OK) {
    delete closure;
    return Status(Code::kUnavailable, std::string("subscribe ") + subject + ": " + natsStatus_GetText(st));
  }
  natsSubscription_SetOnCompleteCB(s->sub_, &Subscription::on_complete, closure);
  natsSubscription_SetPendingLimits(s->sub_, -1, static_cast<int>(std::min<int64_t>(pending_bytes_limit, 1LL << 30)));
  return s;
}

Subscription::~Subscription() {
  if (target_) target_->alive = false;
  if (sub_ != nullptr) {
    natsSubscription_Unsubscribe(sub_);
    natsSubscription_Destroy(sub_);
  }
}

void Subscription::on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto t = *static_cast<std::shared_ptr<Target>*>(closure);
  if (!t->alive) {
    natsMsg_Destroy(msg);
    return;
  }
  t->mailbox->post([t, msg] {
    if (t->alive) {
      t->handler(msg);
    } else {
      natsMsg_Destroy(msg);
    }
  });
}

void Subscription::on_complete(void* closure) { delete static_cast<std::shared_ptr<Target>*>(closure); }

std::string new_inbox() {
  natsInbox* inbox = nullptr;
  natsInbox_Create(&inbox);
  std::string s(inbox);
  natsInbox_Destroy(inbox);
  return s;
}

}  // namespace isthmus::nats

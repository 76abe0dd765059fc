#include "app/app.h"

#include <nats/nats.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <algorithm>
#include <csignal>
#include <memory>

#include "app/api.h"
#include "app/logging.h"
#include "config/schema.h"
#include "app/notify.h"
#include "app/scheduling.h"
#include "http/router.h"
#include "http/server.h"
#include "isthmus_build.h"
#include "link/manager.h"
#include "loop/mailbox.h"
#include "loop/timer.h"
#include "nats/client.h"
#include "replication/replicator.h"

namespace isthmus::app {

namespace {

constexpr uint64_t kDrainMs = 5000;

// Set once the NATS library is closed (Daemon::finish()); run() closes it
// otherwise.
bool g_nats_closed = false;

class Daemon {
 public:
  explicit Daemon(const config::Config& cfg) : cfg_(cfg) { uv_loop_init(&loop_); }

  int run() {
    started_ns_ = loop::wall_ns();
    mailbox_ = std::make_unique<loop::Mailbox>(&loop_);
    replicator_ = std::make_unique<replication::Replicator>(&loop_, cfg_, mailbox_.get());
    links_ = std::make_unique<link::Manager>(&loop_, cfg_, replicator_.get());
    nats_ = std::make_unique<nats::Client>(cfg_.nats, mailbox_.get(), replicator_.get());
    replicator_->attach(nats_.get(), links_.get());

    reload_.last_ok_ns = started_ns_;
    ApiSources src{&cfg_, &reload_, replicator_.get(), links_.get(), nats_.get(), started_ns_};
    register_api(router_, src);
    http_ = std::make_unique<http::Server>(&loop_, router_);
    Status st = http_->listen(cfg_.http.listen.host, cfg_.http.listen.port);
    if (!st) {
      spdlog::critical("http: cannot listen on {}: {}", cfg_.http.listen.to_string(), st.message());
      return teardown(1);
    }
    st = links_->start();
    if (!st) {
      spdlog::critical("{}", st.message());
      return teardown(1);
    }
    replicator_->start();
    nats_->start();

    install_signals();
    uint64_t wd = watchdog_interval_ms();
    if (wd > 0) {
      watchdog_ = std::make_unique<loop::Timer>(&loop_);
      watchdog_->start(wd / 2, wd / 2, [] { notify_watchdog(); });
    }
    spdlog::info("isthmusd {} started: region {}, {} peer(s), {} stream(s)", ISTHMUS_VERSION, cfg_.region.name,
                 cfg_.peers.size(), cfg_.streams.size());
    notify_ready();
    notify_status("running");
    uv_run(&loop_, UV_RUN_DEFAULT);
    return finish();
  }

 private:
  void install_signals() {
    auto add = [this](int signum, uv_signal_cb cb) {
      auto* h = new uv_signal_t;
      uv_signal_init(&loop_, h);
      h->data = this;
      uv_signal_start(h, cb, signum);
      signals_.push_back(h);
    };
    add(SIGTERM, [](uv_signal_t* h, int) { static_cast<Daemon*>(h->data)->begin_shutdown("SIGTERM"); });
    add(SIGINT, [](uv_signal_t* h, int) { static_cast<Daemon*>(h->data)->begin_shutdown("SIGINT"); });
    add(SIGHUP, [](uv_signal_t* h, int) { static_cast<Daemon*>(h->data)->reload(); });
  }

  // SIGHUP: load and validate the file as at start-up; apply it when every
  // key that differs may change at run time (docs/configuration.md,
  // "Reload"), else change nothing and name the keys that need a restart.
  void reload() {
    if (shutting_down_) return;
    ++reload_.reloads;
    reload_.last_ns = loop::wall_ns();
    auto refused = [this](std::string why) {
      reload_.last_ok = false;
      reload_.last_error = std::move(why);
    };
    auto r = config::load_file(cfg_.path);
    if (!r.ok()) {
      for (const auto& e : r.errors) spdlog::error("reload refused: {}", e.to_string());
      spdlog::error("reload refused: {} error(s) in {}; the running configuration stays", r.errors.size(),
                    cfg_.path);
      refused(r.errors.front().to_string() + (r.errors.size() > 1 ? " (and " + std::to_string(r.errors.size() - 1) +
                                                                          " more)"
                                                                    : ""));
      return;
    }
    config::Config next = std::move(r.config);
    auto blockers = config::reload_blockers(cfg_, next);
    std::vector<std::string> changed = config::changed_keys(cfg_, next);
    if (!blockers.empty()) {
      std::string keys;
      for (const auto& k : blockers) {
        // As changed_keys() words it: "streams[1].name ORDERS removed".
        auto it = std::find_if(changed.begin(), changed.end(),
                               [&k](const std::string& c) { return c == k || c.rfind(k + " ", 0) == 0; });
        keys += (keys.empty() ? "" : ", ") + (it != changed.end() ? *it : k);
      }
      spdlog::error("reload refused: a restart is needed for: {} (nothing was applied; the running configuration "
                    "stays until `systemctl restart isthmusd`)",
                    keys);
      refused("a restart is needed for: " + keys);
      return;
    }
    if (auto st = setup_logging(next.log.level, next.log.format); !st) {
      spdlog::error("reload refused: {}", st.message());  // (validated: not expected)
      refused(st.message());
      return;
    }
    reload_.last_ok = true;
    reload_.last_error.clear();
    reload_.last_ok_ns = reload_.last_ns;
    // (At level warning: an operator who asked for it sees it at any level
    // but error.)
    if (changed.empty()) {
      spdlog::warn("SIGHUP: configuration {} reloaded: nothing changed", cfg_.path);
      return;
    }
    links_->reconfigure(next);
    replicator_->reconfigure(next);
    cfg_ = std::move(next);
    std::string keys;
    for (const auto& k : changed) keys += (keys.empty() ? "" : ", ") + k;
    spdlog::warn("SIGHUP: configuration {} reloaded: {}", cfg_.path, keys);
    notify_status("running (configuration reloaded)");
  }

  void begin_shutdown(const char* why) {
    if (shutting_down_) {
      spdlog::warn("{} during the drain: stopping now", why);
      end_loop();
      return;
    }
    shutting_down_ = true;
    spdlog::info("{}: draining (up to {} ms)", why, kDrainMs);
    notify_stopping();
    replicator_->drain();
    drain_deadline_ = loop::mono_ns() + static_cast<int64_t>(kDrainMs) * 1000000;
    drain_timer_ = std::make_unique<loop::Timer>(&loop_);
    drain_timer_->start(0, 20, [this] {
      const bool drained = replicator_->drained();
      if (drained || loop::mono_ns() > drain_deadline_) {
        if (!drained) {
          spdlog::warn("drain time ({} ms) ran out with replica writes unacknowledged; the next start resumes "
                       "from each replica's last sequence (nothing is lost or written twice)",
                       kDrainMs);
        }
        drain_timer_->stop();
        end_loop();
      }
    });
  }

  // Close everything the loop owns; uv_run returns once all handles closed.
  void end_loop() {
    replicator_->flush_now();  // last acknowledgements
    replicator_->stop();
    links_->shutdown();
    for (auto* h : signals_) {
      uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* x) { delete reinterpret_cast<uv_signal_t*>(x); });
    }
    signals_.clear();
    // Closing them gave the signals back their default action (terminate):
    // a further SIGTERM, SIGINT or SIGHUP while NATS closes below (up to
    // ~2 s) would kill the process mid-stop. It is stopping anyway.
    std::signal(SIGTERM, SIG_IGN);
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGHUP, SIG_IGN);
    watchdog_.reset();
    drain_timer_.reset();
    http_->close([] {});
    // NATS: closing flushes and joins the worker; cnats threads stop posting.
    nats_->stop();
    mailbox_->close();
    replicator_->stop();
    // The links are freed in finish(), after the HTTP server: a request it
    // still answers while it drains may read them.
  }

  int teardown(int code) {
    if (http_) http_->close([] {});
    links_.reset();
    mailbox_->close();
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
    return code;
  }

  int finish() {
    http_.reset();
    replicator_.reset();
    links_.reset();
    // cnats runs a closed connection's callback later, on its own thread,
    // with the Client as its closure: wait for that thread (every
    // connection is destroyed by now) before the Client is freed (ASan
    // found the callback reading a freed Client at SIGTERM).
    if (nats_CloseAndWait(2000) != NATS_OK) {
      // A callback may still come: the client stays (the process is ending).
      spdlog::warn("nats: the library's threads did not end within 2 s");
      (void)nats_.release();
    }
    g_nats_closed = true;
    nats_.reset();
    // Let close callbacks of anything destroyed above run.
    uv_run(&loop_, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&loop_);
    if (rc != 0) spdlog::warn("loop closed with handles still open");
    spdlog::info("isthmusd stopped");
    return 0;
  }

  config::Config cfg_;
  ReloadStatus reload_;
  uv_loop_t loop_{};
  int64_t started_ns_ = 0;
  std::unique_ptr<loop::Mailbox> mailbox_;
  std::unique_ptr<replication::Replicator> replicator_;
  std::unique_ptr<link::Manager> links_;
  std::unique_ptr<nats::Client> nats_;
  http::Router router_;
  std::unique_ptr<http::Server> http_;
  std::vector<uv_signal_t*> signals_;
  std::unique_ptr<loop::Timer> watchdog_;
  std::unique_ptr<loop::Timer> drain_timer_;
  int64_t drain_deadline_ = 0;
  bool shutting_down_ = false;
};

}  // namespace

int run(const config::Config& cfg) {
  // Before any thread starts: they all inherit it (app/scheduling.h).
  if (auto sched = apply_cpu_scheduling(cfg.process.cpu_scheduling); !sched) {
    spdlog::warn("process.cpu_scheduling = \"{}\" not applied: {}", cfg.process.cpu_scheduling,
                 sched.status().message());
  } else {
    spdlog::info("cpu scheduling policy: {}", *sched);
  }
  // One message delivery thread for all subscriptions, so that messages keep
  // the server's order across them (nats/client.cpp).
  if (nats_Open(-1) != NATS_OK || nats_SetMessageDeliveryPoolSize(1) != NATS_OK) {
    spdlog::critical("cannot initialise the NATS library");
    return 1;
  }
  int rc = 0;
  {
    Daemon d(cfg);
    rc = d.run();
  }
  if (!g_nats_closed) nats_CloseAndWait(2000);
  return rc;
}

}  // namespace isthmus::app

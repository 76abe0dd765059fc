// Client: the daemon's cnats connection to its local nats-server, and the
// worker thread that runs every blocking NATS call. The replication data
// path (pulled messages, replica writes, their acknowledgements) has its
// own connection, nats/data_conn.h, opened by the Replicator once this one
// is up.
//
// Threads:
//  - the worker thread (owned here) connects, reconnects and runs jobs
//    (JetStream API requests: stream info, create, purge, consumer create...);
//  - cnats' own threads run subscription callbacks; they only post to the
//    loop's Mailbox;
//  - the loop thread receives on_up/on_down and job results through the
//    Mailbox.
//
// Connecting: each URL of nats.urls in turn (from a random one on), each
// with its own options: TLS as nats/cnats_connect.h describes (a tls:// URL
// requires it, the certificate is checked against the system's trust store
// and the URL's host), the URL's user info or nats.credentials. A failure
// names every URL tried and why (last_error(), the log).
//
// Reconnects: cnats' automatic reconnect is off. After a reconnect cnats
// would re-send requests it buffered (a purge or a delete run twice, late).
// Instead a lost connection is closed, reported (on_down), and a fresh
// connection is made after a backoff (on_up with a new generation): the
// replication pipelines reset to the replica's last sequence.
//
// Lifetime: start() after the loop exists; stop() before the Mailbox closes.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "config/config.h"
#include "loop/mailbox.h"
#include "util/status.h"

namespace isthmus::nats {

// A shared, reference-counted connection. The last holder destroys it.
using ConnPtr = std::shared_ptr<natsConnection>;

class ClientListener {
 public:
  virtual ~ClientListener() = default;
  // Loop thread. A fresh connection is ready; generation grows by one each
  // time. url is the entry of nats.urls it was made with, user info
  // included: the data connection goes to the same server with it.
  virtual void on_nats_up(ConnPtr conn, uint64_t generation, const std::string& url) = 0;
  // Loop thread. The connection is gone (reason for logs and /healthz).
  virtual void on_nats_down(const std::string& reason) = 0;
};

class Client {
 public:
  Client(const config::Nats& cfg, loop::Mailbox* mailbox, ClientListener* listener);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void start();
  // Closes the connection and joins the worker. Blocks briefly (flush).
  void stop();

  // Runs job on the worker thread with the current connection (nullptr when
  // disconnected). Jobs run one at a time, in order. Any thread.
  void run(std::function<void(natsConnection*)> job);
  size_t queued_jobs() const;

  // Closes connection `generation` (reported through on_down with
  // `reason`) and connects again, trying the other URLs of nats.urls first
  // and the one left last: that server no longer serves JetStream (cut off
  // from its cluster; replication/server_watch.h decides). Ignored when
  // that connection is gone already (the next one is not left for it; if
  // it was lost meanwhile, the next round still starts after its URL).
  // With a single URL it is tried again. Any thread; the worker acts
  // between jobs.
  void leave_server(uint64_t generation, std::string reason);

  bool connected() const { return connected_.load(); }
  const std::string& last_error() const { return last_error_; }  // loop thread

 private:
  void worker_main();
  // Worker thread. Tries each URL once; on failure logs the reasons (when
  // they changed) and posts them to last_error_.
  bool try_connect();
  // Worker thread. One connection attempt to one URL (nats/cnats_connect.h:
  // its TLS policy); the error names the URL without its user info.
  Result<natsConnection*> connect_to(const std::string& url);
  static void on_closed_cb(natsConnection* nc, void* closure);
  static void on_error_cb(natsConnection* nc, natsSubscription* sub, natsStatus err, void* closure);

  config::Nats cfg_;
  loop::Mailbox* mailbox_;
  ClientListener* listener_;
  std::thread worker_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void(natsConnection*)>> jobs_;
  bool stopping_ = false;
  bool lost_ = false;  // closed callback fired for the current connection
  std::string leave_reason_;  // leave_server() asked (guarded by mu_)
  uint64_t leave_gen_ = 0;    // of that connection (guarded by mu_)
  size_t url_index_ = 0;      // worker: the nats.urls entry connected to
  bool next_after_ = false;   // worker: the next round starts after url_index_
  ConnPtr conn_;       // worker's reference
  uint64_t generation_ = 0;
  std::atomic<bool> connected_{false};
  std::atomic<natsConnection*> current_{nullptr};  // worker sets; cnats' closed callback reads
  std::minstd_rand rng_{std::random_device{}()};  // worker: first URL tried
  std::string warned_error_;                      // worker: last failure logged
  std::string last_error_;                        // loop thread
};

// One asynchronous subscription whose messages are delivered on the loop
// thread. Loop thread only for construction and destruction. After the
// destructor no handler call happens (messages already queued are dropped).
class Subscription {
 public:
  using Handler = std::function<void(natsMsg*)>;  // takes ownership of msg
  static Result<std::unique_ptr<Subscription>> create(natsConnection* nc, const std::string& subject,
                                                      loop::Mailbox* mailbox, Handler handler,
                                                      int64_t pending_bytes_limit);
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

 private:
  struct Target;
  Subscription() = default;
  static void on_msg(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);
  static void on_complete(void* closure);
  natsSubscription* sub_ = nullptr;
  std::shared_ptr<Target> target_;
};

// A unique inbox prefix ("_INBOX.<nuid>").
std::string new_inbox();

}  // namespace isthmus::nats

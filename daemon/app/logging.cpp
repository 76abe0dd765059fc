#include "app/logging.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <mutex>

namespace isthmus::app {

namespace {

void json_escape(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
}

// Text ("2026-11-28T12:00:00.000 info message") or one JSON object per
// line ({"ts":"...","level":"info","msg":"..."}), switchable while other
// threads log (the switch takes the sink's lock, as every line does).
class DaemonSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  DaemonSink() { set_pattern_("%Y-%m-%dT%H:%M:%S.%e %l %v"); }
  void set_json(bool json) {
    std::lock_guard<std::mutex> lock(mutex_);
    json_ = json;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (!json_) {
      // One line per message: a control character in it (a CR or LF in a
      // configuration key or a peer's text) is escaped, so no text can
      // forge a line of its own.
      std::string_view text(msg.payload.data(), msg.payload.size());
      spdlog::memory_buf_t buf;
      if (std::none_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; })) {
        formatter_->format(msg, buf);
      } else {
        std::string escaped;
        json_escape(escaped, text);
        spdlog::details::log_msg copy = msg;
        copy.payload = spdlog::string_view_t(escaped.data(), escaped.size());
        formatter_->format(copy, buf);
      }
      std::fwrite(buf.data(), 1, buf.size(), stderr);
      return;
    }
    auto secs = std::chrono::time_point_cast<std::chrono::microseconds>(msg.time);
    auto us = secs.time_since_epoch().count();
    std::string line = "{\"ts\":" + std::to_string(us / 1000000) + "." +
                       fmt::format("{:06d}", us % 1000000) + ",\"level\":\"";
    line += spdlog::level::to_string_view(msg.level).data();
    line += "\",\"msg\":\"";
    json_escape(line, std::string_view(msg.payload.data(), msg.payload.size()));
    line += "\"}\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  bool json_ = false;
};

std::shared_ptr<DaemonSink>& the_sink() {
  static std::shared_ptr<DaemonSink> sink;
  return sink;
}

}  // namespace

Status setup_logging(const std::string& level, const std::string& format) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return Status(Code::kInvalid, "unknown log level " + level);
  }
  if (format != "json" && format != "text") return Status(Code::kInvalid, "unknown log format " + format);
  auto& sink = the_sink();
  if (!sink) {
    // Installed once: spdlog's free functions use the default logger
    // through a raw pointer, so it is never replaced while threads run.
    sink = std::make_shared<DaemonSink>();
    auto logger = std::make_shared<spdlog::logger>("isthmus", sink);
    logger->flush_on(spdlog::level::warn);
    spdlog::set_default_logger(logger);
  }
  sink->set_json(format == "json");
  spdlog::default_logger_raw()->set_level(lvl);
  return Status::ok();
}

}  // namespace isthmus::app

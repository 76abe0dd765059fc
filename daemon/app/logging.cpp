#include "app/logging.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

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

// One JSON object per line: {"ts":"...","level":"info","msg":"..."}.
class JsonSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
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
};

}  // namespace

Status setup_logging(const std::string& level, const std::string& format) {
  std::shared_ptr<spdlog::logger> logger;
  if (format == "json") {
    logger = std::make_shared<spdlog::logger>("isthmus", std::make_shared<JsonSink>());
  } else {
    logger = std::make_shared<spdlog::logger>("isthmus", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return Status(Code::kInvalid, "unknown log level " + level);
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  return Status::ok();
}

}  // namespace isthmus::app

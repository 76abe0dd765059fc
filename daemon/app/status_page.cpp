#include "app/status_page.h"

#include "report/render.h"

namespace isthmus::app {

using Json = nlohmann::json;

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_status_page(const Json& health, const Json& lag, const Json& links, int refresh_s,
                               int64_t now_ns) {
  const bool ok = health.value("status", std::string()) == "ok";
  const std::string region = health.value("region", std::string("?"));
  const std::string verdict = ok ? "ok" : "unhealthy";
  std::string out;
  out += "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  if (refresh_s > 0) out += "<meta http-equiv=\"refresh\" content=\"" + std::to_string(refresh_s) + "\">\n";
  out += "<title>isthmusd " + html_escape(region) + ": " + verdict + "</title>\n";
  out += "<style>\n"
         "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\n"
         "pre{font-family:ui-monospace,monospace;background:#f6f6f6;padding:.8em;overflow-x:auto}\n"
         ".ok{color:#11772b}.unhealthy{color:#b00020}\n"
         "footer{color:#666;font-size:90%}\n"
         "</style>\n</head>\n<body>\n";
  out += "<h1>isthmusd " + html_escape(region) + ": <span class=\"" + verdict + "\">" + verdict + "</span></h1>\n";
  out += "<h2>Health</h2>\n<pre>" + html_escape(report::render_health(health)) + "</pre>\n";
  out += "<h2>Lag</h2>\n<pre>" + html_escape(report::render_lag(lag)) + "</pre>\n";
  out += "<h2>Links</h2>\n<pre>" + html_escape(report::render_links(links, now_ns)) + "</pre>\n";
  out += "<footer>";
  if (refresh_s > 0) {
    out += "Reloads every " + std::to_string(refresh_s) + " s (<a href=\"/?refresh=0\">stop</a>). ";
  } else {
    out += "<a href=\"/\">Reload every 2 s</a>. ";
  }
  out += "The same as <code>isthmusctl health</code>, <code>lag</code> and <code>links</code>. "
         "JSON: <a href=\"/healthz\">/healthz</a>, <a href=\"/v1/lag\">/v1/lag</a>, "
         "<a href=\"/v1/links\">/v1/links</a>; Prometheus: <a href=\"/metrics\">/metrics</a>.</footer>\n";
  out += "</body>\n</html>\n";
  return out;
}

}  // namespace isthmus::app

// Test helper: three readable files for link.tls.ca/cert/key. A configuration
// with [[peers]] must name them (links are always mutual TLS); the loader
// checks only that each is a readable regular file, so their content is
// irrelevant here. Lifetime: the files live as long as the object.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

class TlsFiles {
 public:
  TlsFiles() {
    char tmpl[] = "/tmp/isthmus-config-test.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("TlsFiles: mkdtemp failed");
    dir_ = tmpl;
    for (const char* f : {"/ca.pem", "/cert.pem", "/key.pem"}) std::ofstream(dir_ + f) << "PEM\n";
  }
  ~TlsFiles() {
    for (const char* f : {"/ca.pem", "/cert.pem", "/key.pem"}) ::unlink((dir_ + f).c_str());
    ::rmdir(dir_.c_str());
  }
  TlsFiles(const TlsFiles&) = delete;
  TlsFiles& operator=(const TlsFiles&) = delete;

  std::string path(const char* name) const { return dir_ + "/" + name + ".pem"; }
  // A [link.tls] table naming the three files.
  std::string table() const {
    return "[link.tls]\nca = \"" + path("ca") + "\"\ncert = \"" + path("cert") + "\"\nkey = \"" + path("key") +
           "\"\n";
  }
  // The same as an inline table, for `link.tls = ...`.
  std::string inline_table() const {
    return "{ ca = \"" + path("ca") + "\", cert = \"" + path("cert") + "\", key = \"" + path("key") + "\" }";
  }

 private:
  std::string dir_;
};

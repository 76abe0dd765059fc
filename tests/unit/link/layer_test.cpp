// Unit tests for daemon/link/layer.{h,cpp}: the byte-layer stack.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "link/layer.h"

using namespace isthmus;
using namespace isthmus::link;

namespace {

std::vector<uint8_t> bytes_of(std::string_view s) { return std::vector<uint8_t>(s.begin(), s.end()); }
std::string str_of(const std::vector<uint8_t>& b) { return std::string(b.begin(), b.end()); }

// XORs every byte with a key both ways (its own inverse). Records calls.
class XorLayer : public Layer {
 public:
  XorLayer(uint8_t key, std::vector<std::string>* log, std::string name)
      : key_(key), log_(log), name_(std::move(name)) {}
  Status write(std::span<const uint8_t> in, bool flush, std::vector<uint8_t>& to_net) override {
    log_->push_back(name_ + ".write" + (flush ? "(flush)" : ""));
    for (uint8_t b : in) to_net.push_back(b ^ key_);
    return Status::ok();
  }
  Status read(std::span<const uint8_t> in, std::vector<uint8_t>& to_app, std::vector<uint8_t>&) override {
    log_->push_back(name_ + ".read");
    for (uint8_t b : in) to_app.push_back(b ^ key_);
    return Status::ok();
  }

 private:
  uint8_t key_;
  std::vector<std::string>* log_;
  std::string name_;
};

// Prefixes each written batch with a tag byte and strips it on read, so the
// order of layers shows in the bytes. On reading "PING" it answers "PONG"
// towards the network (like a handshake) and passes nothing up.
class TagLayer : public Layer {
 public:
  TagLayer(char tag, std::vector<std::string>* log, std::string name)
      : tag_(static_cast<uint8_t>(tag)), log_(log), name_(std::move(name)) {}
  Status write(std::span<const uint8_t> in, bool flush, std::vector<uint8_t>& to_net) override {
    log_->push_back(name_ + ".write" + (flush ? "(flush)" : ""));
    to_net.push_back(tag_);
    to_net.insert(to_net.end(), in.begin(), in.end());
    return Status::ok();
  }
  Status read(std::span<const uint8_t> in, std::vector<uint8_t>& to_app, std::vector<uint8_t>& to_net) override {
    log_->push_back(name_ + ".read");
    if (in.empty() || in[0] != tag_) return Status(Code::kCorrupt, name_ + ": missing tag");
    std::span<const uint8_t> rest = in.subspan(1);
    if (std::string(rest.begin(), rest.end()) == "PING") {
      to_net.push_back(tag_);
      const std::string pong = "PONG";
      to_net.insert(to_net.end(), pong.begin(), pong.end());
      return Status::ok();
    }
    to_app.insert(to_app.end(), rest.begin(), rest.end());
    return Status::ok();
  }

 private:
  uint8_t tag_;
  std::vector<std::string>* log_;
  std::string name_;
};

class FailingLayer : public Layer {
 public:
  Status write(std::span<const uint8_t>, bool, std::vector<uint8_t>&) override {
    return Status(Code::kIo, "write failed");
  }
  Status read(std::span<const uint8_t>, std::vector<uint8_t>&, std::vector<uint8_t>&) override {
    return Status(Code::kCorrupt, "read failed");
  }
};

}  // namespace

TEST_CASE("empty LayerStack passes bytes through both ways", "[layer]") {
  LayerStack s;
  CHECK(s.empty());
  std::vector<uint8_t> net = {0x01};
  auto payload = bytes_of(std::string("frames\0\xff", 8));
  REQUIRE(s.write(payload, true, net).is_ok());
  CHECK(net.size() == 9);
  CHECK(std::vector<uint8_t>(net.begin() + 1, net.end()) == payload);

  std::vector<uint8_t> app = {0x02}, back;
  REQUIRE(s.read(payload, app, back).is_ok());
  CHECK(std::vector<uint8_t>(app.begin() + 1, app.end()) == payload);
  CHECK(back.empty());

  std::vector<uint8_t> none;
  REQUIRE(s.write({}, false, none).is_ok());
  REQUIRE(s.read({}, app, back).is_ok());
  CHECK(none.empty());
  CHECK(app.size() == 9);
}

TEST_CASE("a single layer transforms both ways", "[layer]") {
  std::vector<std::string> log;
  LayerStack s;
  s.push_bottom(std::make_unique<XorLayer>(0x5a, &log, "x"));
  CHECK_FALSE(s.empty());
  std::vector<uint8_t> net;
  REQUIRE(s.write(bytes_of("abc"), false, net).is_ok());
  CHECK(net == std::vector<uint8_t>{'a' ^ 0x5a, 'b' ^ 0x5a, 'c' ^ 0x5a});
  std::vector<uint8_t> app, back;
  REQUIRE(s.read(net, app, back).is_ok());
  CHECK(str_of(app) == "abc");
  CHECK(back.empty());
  CHECK(log == std::vector<std::string>{"x.write", "x.read"});
}

TEST_CASE("two-layer stack: write goes top to bottom, read bottom to top", "[layer]") {
  std::vector<std::string> log;
  LayerStack s;
  // Top (next to frames): tag 'T'. Bottom (next to the socket): XOR.
  s.push_bottom(std::make_unique<TagLayer>('T', &log, "tag"));
  s.push_bottom(std::make_unique<XorLayer>(0xff, &log, "xor"));

  std::vector<uint8_t> net;
  REQUIRE(s.write(bytes_of("hello"), true, net).is_ok());
  // Tag added first, then the whole thing XORed (tag included).
  std::vector<uint8_t> expect;
  for (char c : std::string("Thello")) expect.push_back(static_cast<uint8_t>(c) ^ 0xff);
  CHECK(net == expect);
  CHECK(log == std::vector<std::string>{"tag.write(flush)", "xor.write(flush)"});

  log.clear();
  std::vector<uint8_t> app, back;
  REQUIRE(s.read(net, app, back).is_ok());
  CHECK(str_of(app) == "hello");
  CHECK(back.empty());
  CHECK(log == std::vector<std::string>{"xor.read", "tag.read"});
}

TEST_CASE("the flush flag reaches every layer", "[layer]") {
  std::vector<std::string> log;
  LayerStack s;
  s.push_bottom(std::make_unique<XorLayer>(1, &log, "a"));
  s.push_bottom(std::make_unique<XorLayer>(2, &log, "b"));
  std::vector<uint8_t> net;
  REQUIRE(s.write(bytes_of("x"), false, net).is_ok());
  CHECK(log == std::vector<std::string>{"a.write", "b.write"});
  CHECK(net == std::vector<uint8_t>{'x' ^ 1 ^ 2});
}

TEST_CASE("bytes a layer answers on read pass down through the layers below it", "[layer]") {
  std::vector<std::string> log;
  LayerStack s;
  s.push_bottom(std::make_unique<TagLayer>('T', &log, "tag"));
  s.push_bottom(std::make_unique<XorLayer>(0x20, &log, "xor"));

  // The peer sends PING through its own identical stack.
  std::vector<uint8_t> wire;
  for (char c : std::string("TPING")) wire.push_back(static_cast<uint8_t>(c) ^ 0x20);
  std::vector<uint8_t> app, back = {0x99};
  REQUIRE(s.read(wire, app, back).is_ok());
  CHECK(app.empty());
  // The answer "TPONG" went through the XOR layer only (the one below), with
  // flush set, and was appended after what to_net already held.
  std::vector<uint8_t> expect = {0x99};
  for (char c : std::string("TPONG")) expect.push_back(static_cast<uint8_t>(c) ^ 0x20);
  CHECK(back == expect);
  CHECK(log == std::vector<std::string>{"xor.read", "tag.read", "xor.write(flush)"});

  // The peer decodes the answer with its own stack.
  std::vector<std::string> peer_log;
  LayerStack peer;
  peer.push_bottom(std::make_unique<TagLayer>('T', &peer_log, "tag"));
  peer.push_bottom(std::make_unique<XorLayer>(0x20, &peer_log, "xor"));
  std::vector<uint8_t> papp, pback;
  REQUIRE(peer.read(std::span<const uint8_t>(back.data() + 1, back.size() - 1), papp, pback).is_ok());
  CHECK(str_of(papp) == "PONG");
}

TEST_CASE("a bottom layer's answer goes straight to the network", "[layer]") {
  std::vector<std::string> log;
  LayerStack s;
  s.push_bottom(std::make_unique<XorLayer>(0x20, &log, "xor"));
  s.push_bottom(std::make_unique<TagLayer>('B', &log, "tag"));
  std::vector<uint8_t> app, back;
  REQUIRE(s.read(bytes_of("BPING"), app, back).is_ok());
  CHECK(str_of(back) == "BPONG");
  // The bottom layer passed nothing up; the XOR layer above still ran on empty input.
  CHECK(app.empty());
}

TEST_CASE("three layers round trip through a peer stack", "[layer]") {
  auto make = [](std::vector<std::string>* log) {
    LayerStack s;
    s.push_bottom(std::make_unique<TagLayer>('1', log, "t1"));
    s.push_bottom(std::make_unique<XorLayer>(0x33, log, "x"));
    s.push_bottom(std::make_unique<TagLayer>('2', log, "t2"));
    return s;
  };
  std::vector<std::string> la, lb;
  LayerStack a = make(&la), b = make(&lb);
  std::vector<uint8_t> net;
  REQUIRE(a.write(bytes_of("payload"), true, net).is_ok());
  CHECK(net.front() == '2');  // the bottom layer's framing is outermost
  std::vector<uint8_t> app, back;
  REQUIRE(b.read(net, app, back).is_ok());
  CHECK(str_of(app) == "payload");
  CHECK(lb == std::vector<std::string>{"t2.read", "x.read", "t1.read"});
}

TEST_CASE("push_top puts a layer next to the frames, above every other", "[layer]") {
  // As a link does: TLS at the bottom first, S2 on top once HELLO is done.
  std::vector<std::string> log;
  LayerStack s;
  s.push_bottom(std::make_unique<TagLayer>('B', &log, "bottom"));
  s.push_top(std::make_unique<TagLayer>('M', &log, "middle"));
  s.push_top(std::make_unique<TagLayer>('T', &log, "top"));
  REQUIRE(s.size() == 3);
  std::vector<uint8_t> net;
  REQUIRE(s.write(bytes_of("x"), true, net).is_ok());
  CHECK(str_of(net) == "BMTx");  // the top layer's framing is innermost
  CHECK(log == std::vector<std::string>{"top.write(flush)", "middle.write(flush)", "bottom.write(flush)"});
  log.clear();
  std::vector<uint8_t> app, back;
  REQUIRE(s.read(net, app, back).is_ok());
  CHECK(str_of(app) == "x");
  CHECK(log == std::vector<std::string>{"bottom.read", "middle.read", "top.read"});
  // read_top runs the top layer alone.
  app.clear();
  REQUIRE(s.read_top(bytes_of("Ty"), app).is_ok());
  CHECK(str_of(app) == "y");
}

TEST_CASE("a layer error stops the stack and is returned", "[layer]") {
  std::vector<std::string> log;
  LayerStack s;
  s.push_bottom(std::make_unique<XorLayer>(1, &log, "x"));
  s.push_bottom(std::make_unique<FailingLayer>());
  std::vector<uint8_t> net, app, back;
  Status w = s.write(bytes_of("abc"), true, net);
  CHECK(w.code() == Code::kIo);
  CHECK(net.empty());
  Status r = s.read(bytes_of("abc"), app, back);
  CHECK(r.code() == Code::kCorrupt);
  CHECK(app.empty());
  CHECK(log == std::vector<std::string>{"x.write(flush)"});  // the layer above never read

  std::vector<std::string> log2;
  LayerStack t;
  t.push_bottom(std::make_unique<TagLayer>('T', &log2, "tag"));
  std::vector<uint8_t> app2, back2;
  CHECK(t.read(bytes_of("Xoops"), app2, back2).code() == Code::kCorrupt);
  CHECK(app2.empty());
}

// The binary's istiod settings: addresses, root bundles, the token read on
// every call.
#include "app/istiod.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "tls/ca.h"

namespace zt::app {
namespace {

TEST(IstiodAddress, ParsesWhatUpstreamAccepts) {
  auto a = parse_istiod_address("https://istiod.istio-system.svc:15012");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->tls);
  EXPECT_EQ(a->host, "istiod.istio-system.svc");
  EXPECT_EQ(a->port, 15012);
  EXPECT_EQ(a->authority(), "istiod.istio-system.svc:15012");

  auto plain = parse_istiod_address("http://10.0.0.1:15010/");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->tls);
  EXPECT_EQ(plain->host, "10.0.0.1");

  auto v6 = parse_istiod_address("https://[fd00::1]:15012");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "fd00::1");
  EXPECT_EQ(v6->authority(), "[fd00::1]:15012");

  auto no_port = parse_istiod_address("https://istiod");
  ASSERT_TRUE(no_port);
  EXPECT_EQ(no_port->port, 443);

  for (const char* bad : {"istiod:15012", "ftp://istiod:1", "https://:15012", "https://istiod:0",
                          "https://istiod:99999", "https://istiod:1x", "https://[fd00::1", "https://[nope]:1"}) {
    auto r = parse_istiod_address(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_NE(r.error().detail.find(bad), std::string::npos) << r.error().detail;
    }
  }
}

struct TempFile {
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/zt-istiod-test-XXXXXX";
    int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    close(fd);
    path = name;
    write(text);
  }
  ~TempFile() { std::remove(path.c_str()); }
  void write(const std::string& text) const { std::ofstream(path, std::ios::trunc) << text; }
  std::string path;
};

// The token rotates: each call reads the file again.
TEST(CallMetadata, ReadsTheTokenOnEveryCall) {
  TempFile token("first-token\n");
  CallMetadata meta(token.path, "Kubernetes");
  auto h = meta();
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, (h2::Headers{{"authorization", "Bearer first-token"}, {"clusterid", "Kubernetes"}}));
  token.write("second-token");
  EXPECT_EQ((*meta())[0].second, "Bearer second-token");
  token.write("  \n");
  EXPECT_FALSE(meta());
  EXPECT_FALSE(CallMetadata("/nonexistent/token", "c")());
  auto none = CallMetadata(std::nullopt, "c")();
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, (h2::Headers{{"clusterid", "c"}}));
}

TEST(Roots, LoadFromFileInlineAndRejectGarbage) {
  auto ca = tls::Ca::create({}, Rng(7), WallTime(std::chrono::hours(24 * 365 * 56)));
  ASSERT_TRUE(ca);
  const std::string pem = ca->root().to_pem();
  TempFile file(pem + pem);
  auto from_file = load_roots({RootCert::Kind::file, file.path});
  ASSERT_TRUE(from_file) << from_file.error().message();
  EXPECT_EQ(from_file->size(), 2u);
  auto inline_pem = load_roots({RootCert::Kind::inline_pem, pem});
  ASSERT_TRUE(inline_pem);
  EXPECT_EQ(inline_pem->size(), 1u);
  EXPECT_FALSE(load_roots({RootCert::Kind::file, "/nonexistent/root.pem"}));
  file.write("not a certificate");
  auto garbage = load_roots({RootCert::Kind::file, file.path});
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().detail.find(file.path), std::string::npos);
}

}  // namespace
}  // namespace zt::app

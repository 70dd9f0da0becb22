// fake-istiod as a process, driven by the gRPC C++ library over TLS (the
// trust bundle from its state dir, istiod's name as the TLS target): delta
// xDS of a mesh file with ACKs, NACKs, pushes on edits and resumption by
// initial_resource_versions; CreateCertificate checked with OpenSSL; the
// admin endpoints; the bearer token; a clean exit on SIGTERM. Ephemeral
// ports and a temporary directory per case.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "xds/proto/citadel.grpc.pb.h"
#include "xds/proto/workload.pb.h"
#include "xds/proto/xds.grpc.pb.h"

static_assert(OPENSSL_VERSION_MAJOR >= 3, "this test uses OpenSSL 3, never BoringSSL");

extern char** environ;

namespace zt::e2e::fake_istiod {
namespace {

namespace pb = envoy::service::discovery::v3;
namespace auth = istio::v1::auth;
using namespace std::chrono_literals;

constexpr const char* address_type = "type.googleapis.com/istio.workload.Address";
constexpr const char* authorization_type = "type.googleapis.com/istio.security.Authorization";
constexpr const char* workload_local = "cluster1//v1/Pod/default/local";
constexpr const char* workload_tcp = "cluster1//v1/Pod/default/local-tcp";
constexpr const char* policy = "default/deny-9999";
const std::set<std::string> all_addresses = {workload_local, workload_tcp, "default/example.com",
                                             "default/example2.com"};
constexpr auto wait_max = 10s;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_file(const std::string& path, const std::string& content) {
  // Aside then renamed: the watcher never reads half a file.
  std::ofstream(path + ".tmp", std::ios::trunc) << content;
  std::filesystem::rename(path + ".tmp", path);
}

// The mesh edited: `from` .. `to` (exclusive) cut out, then `a` -> `b`.
std::string cut(const std::string& text, const std::string& from, const std::string& to) {
  size_t start = text.find(from), end = text.find(to, start);
  EXPECT_NE(start, std::string::npos) << from;
  EXPECT_NE(end, std::string::npos) << to;
  return text.substr(0, start) + text.substr(end);
}

std::string replace(std::string text, const std::string& a, const std::string& b) {
  size_t at = text.find(a);
  EXPECT_NE(at, std::string::npos) << a;
  return text.replace(at, a.size(), b);
}

template <class Done>
bool eventually(Done done) {
  for (auto deadline = std::chrono::steady_clock::now() + wait_max; std::chrono::steady_clock::now() < deadline;
       std::this_thread::sleep_for(20ms))
    if (done()) return true;
  return done();
}

struct HttpAnswer {
  int status = 0;
  std::string body;
};

HttpAnswer http(uint16_t port, const std::string& method, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  HttpAnswer out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    std::string request = method + " " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string response;
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof(buf), 0)) > 0;) response.append(buf, size_t(n));
    if (response.size() > 12) out.status = std::atoi(response.c_str() + 9);
    size_t body = response.find("\r\n\r\n");
    if (body != std::string::npos) out.body = response.substr(body + 4);
  }
  ::close(fd);
  return out;
}

// --- OpenSSL: a CSR as ztunnel makes one, and chain checks.

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using CertPtr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using CsrPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;

// P-256, SHA-256, a URI SAN and nothing else (no subject).
std::string make_csr(const std::string& uri) {
  KeyPtr key(EVP_EC_gen("P-256"));
  CsrPtr csr(X509_REQ_new());
  X509_REQ_set_pubkey(csr.get(), key.get());
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  std::string san = "URI:" + uri;
  sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str()));
  X509_REQ_add_extensions(csr.get(), exts);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  EXPECT_GT(X509_REQ_sign(csr.get(), key.get(), EVP_sha256()), 0);
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), csr.get());
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size_t(len));
}

std::vector<CertPtr> parse_certs(const std::string& pem) {
  std::vector<CertPtr> out;
  BioPtr bio(BIO_new_mem_buf(pem.data(), int(pem.size())));
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(cert);
  return out;
}

std::vector<std::string> uri_sans(X509* cert) {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_URI)
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.uniformResourceIdentifier)));
  }
  GENERAL_NAMES_free(names);
  return out;
}

// Verifies `leaf_pem` against every root of `bundle_pem`; "" when it holds.
std::string verify(const std::string& leaf_pem, const std::string& bundle_pem) {
  auto leaf = parse_certs(leaf_pem);
  if (leaf.size() != 1) return "not one leaf";
  StorePtr store(X509_STORE_new());
  for (const CertPtr& root : parse_certs(bundle_pem)) X509_STORE_add_cert(store.get(), root.get());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf.front().get(), nullptr);
  if (X509_verify_cert(ctx.get()) == 1) return "";
  return X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

int lifetime_seconds(X509* cert) {
  int days = 0, seconds = 0;
  ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(cert), X509_get0_notAfter(cert));
  return days * 86400 + seconds;
}

// --- The process.

class FakeIstiodTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fake-istiod-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    mesh_text_ = read_file(std::string(ZT_MESH_TESTDATA) + "/localhost.yaml");
    ASSERT_FALSE(mesh_text_.empty());
    write_file(mesh_path(), mesh_text_);
  }

  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (HasFailure()) std::cerr << "--- fake-istiod log:\n" << read_file(dir_ + "/log");
    std::filesystem::remove_all(dir_);
  }

  void start(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {ZT_FAKE_ISTIOD_BIN,
                                     "--listen", "127.0.0.1:0",
                                     "--port-file", dir_ + "/port",
                                     "--state-dir", dir_ + "/state",
                                     "--mesh", mesh_path(),
                                     "--admin-listen", "127.0.0.1:0",
                                     "--admin-port-file", dir_ + "/admin-port"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, (dir_ + "/log").c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
    ASSERT_EQ(posix_spawn(&pid_, ZT_FAKE_ISTIOD_BIN, &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    // The admin port file comes last: once it is there, all is up.
    ASSERT_TRUE(eventually([&] { return std::filesystem::exists(dir_ + "/admin-port"); })) << read_file(dir_ + "/log");
    port_ = uint16_t(std::stoi(read_file(dir_ + "/port")));
    admin_port_ = uint16_t(std::stoi(read_file(dir_ + "/admin-port")));
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = root_bundle();
    grpc::ChannelArguments args_for_channel;
    args_for_channel.SetSslTargetNameOverride("istiod.istio-system.svc");
    channel_ = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port_), grpc::SslCredentials(tls),
                                         args_for_channel);
  }

  std::string mesh_path() const { return dir_ + "/mesh.yaml"; }
  std::string root_bundle() const { return read_file(dir_ + "/state/root-cert.pem"); }
  nlohmann::json status() const { return nlohmann::json::parse(http(admin_port_, "GET", "/status").body); }
  HttpAnswer post(const std::string& path) const { return http(admin_port_, "POST", path); }

  // A context as ztunnel's: token, cluster id, and a deadline so that a
  // missing answer fails the case instead of hanging it.
  std::unique_ptr<grpc::ClientContext> context(const std::string& token = "") const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    ctx->AddMetadata("clusterid", "Kubernetes");
    ctx->set_deadline(std::chrono::system_clock::now() + 30s);
    return ctx;
  }

  grpc::Status create_certificate(const auth::IstioCertificateRequest& request, auth::IstioCertificateResponse& out,
                                  const std::string& token = "") {
    auto stub = auth::IstioCertificateService::NewStub(channel_);
    auto ctx = context(token);
    return stub->CreateCertificate(ctx.get(), request, &out);
  }

  std::string dir_;
  std::string mesh_text_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
  uint16_t admin_port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
};

// One delta ADS stream.
struct AdsStream {
  std::unique_ptr<grpc::ClientContext> ctx;
  std::unique_ptr<pb::AggregatedDiscoveryService::Stub> stub;
  std::unique_ptr<grpc::ClientReaderWriter<pb::DeltaDiscoveryRequest, pb::DeltaDiscoveryResponse>> rw;

  AdsStream(std::shared_ptr<grpc::Channel> channel, std::unique_ptr<grpc::ClientContext> c)
      : ctx(std::move(c)), stub(pb::AggregatedDiscoveryService::NewStub(channel)) {
    rw = stub->DeltaAggregatedResources(ctx.get());
  }

  bool subscribe(const std::string& type_url, const std::map<std::string, std::string>& initial_versions = {},
                 bool with_node = false) {
    pb::DeltaDiscoveryRequest req;
    req.set_type_url(type_url);
    if (with_node) {
      req.mutable_node()->set_id("ztunnel~10.0.0.9~ztunnel-abc.istio-system~istio-system.svc.cluster.local");
      (*req.mutable_node()->mutable_metadata()->mutable_fields())["NODE_NAME"].set_string_value("node-a");
    }
    for (const auto& entry : initial_versions) (*req.mutable_initial_resource_versions())[entry.first] = entry.second;
    return rw->Write(req);
  }

  bool ack(const pb::DeltaDiscoveryResponse& r) {
    pb::DeltaDiscoveryRequest req;
    req.set_type_url(r.type_url());
    req.set_response_nonce(r.nonce());
    return rw->Write(req);
  }

  bool nack(const pb::DeltaDiscoveryResponse& r, const std::string& why) {
    pb::DeltaDiscoveryRequest req;
    req.set_type_url(r.type_url());
    req.set_response_nonce(r.nonce());
    req.mutable_error_detail()->set_code(3);
    req.mutable_error_detail()->set_message(why);
    return rw->Write(req);
  }

  pb::DeltaDiscoveryResponse read() {
    pb::DeltaDiscoveryResponse r;
    EXPECT_TRUE(rw->Read(&r)) << "the stream ended";
    return r;
  }
};

std::set<std::string> names(const pb::DeltaDiscoveryResponse& r) {
  std::set<std::string> out;
  for (const pb::Resource& res : r.resources()) out.insert(res.name());
  return out;
}

std::set<std::string> removed(const pb::DeltaDiscoveryResponse& r) {
  return {r.removed_resources().begin(), r.removed_resources().end()};
}

std::map<std::string, std::string> versions(const pb::DeltaDiscoveryResponse& r) {
  std::map<std::string, std::string> out;
  for (const pb::Resource& res : r.resources()) out[res.name()] = res.version();
  return out;
}

TEST_F(FakeIstiodTest, ServesTheMeshFileAndJournalsAcksAndNacks) {
  start();
  AdsStream ads(channel_, context());
  ASSERT_TRUE(ads.subscribe(address_type, {}, true));
  pb::DeltaDiscoveryResponse addresses = ads.read();
  EXPECT_EQ(addresses.type_url(), address_type);
  EXPECT_EQ(names(addresses), all_addresses);
  EXPECT_FALSE(addresses.nonce().empty());
  for (const pb::Resource& res : addresses.resources()) {
    EXPECT_FALSE(res.version().empty()) << res.name();
    EXPECT_EQ(res.resource().type_url(), address_type);
    istio::workload::Address decoded;
    ASSERT_TRUE(decoded.ParseFromString(res.resource().value())) << res.name();
    if (res.name() == workload_local) {
      EXPECT_EQ(decoded.workload().uid(), workload_local);
    }
  }
  ASSERT_TRUE(ads.ack(addresses));

  ASSERT_TRUE(ads.subscribe(authorization_type));
  pb::DeltaDiscoveryResponse policies = ads.read();
  EXPECT_EQ(policies.type_url(), authorization_type);
  EXPECT_EQ(names(policies), std::set<std::string>{policy});
  EXPECT_NE(policies.nonce(), addresses.nonce());
  ASSERT_TRUE(ads.nack(policies, "rule 0: no thanks"));

  ASSERT_TRUE(eventually([&] { return status()["nacks"].size() == 1; }));
  nlohmann::json s = status();
  EXPECT_EQ(s["acks"], 1);
  EXPECT_EQ(s["nacks"][0]["type_url"], authorization_type);
  EXPECT_EQ(s["nacks"][0]["nonce"], policies.nonce());
  EXPECT_EQ(s["nacks"][0]["detail"], "rule 0: no thanks");
  EXPECT_EQ(s["streams_open"], 1);
  EXPECT_EQ(s["streams_opened"], 1);
  EXPECT_EQ(s["last_node_id"], "ztunnel~10.0.0.9~ztunnel-abc.istio-system~istio-system.svc.cluster.local");
  EXPECT_EQ(s["last_node_metadata"]["NODE_NAME"], "node-a");
  EXPECT_EQ(s["last_clusterid"], "Kubernetes");

  ads.rw->WritesDone();
  EXPECT_TRUE(ads.rw->Finish().ok());
  EXPECT_TRUE(eventually([&] { return status()["streams_open"] == 0; }));
}

// On demand (XDS_ON_DEMAND): subscribed to nothing first ("*" in and out),
// then by "network/ip": the workload comes under its own name with its
// aliases, a name nothing has is answered with a removal, and the fetched
// workload keeps getting its updates.
TEST_F(FakeIstiodTest, OnDemandNamesAreAnsweredByAliasOrRemoval) {
  start();
  AdsStream ads(channel_, context());
  pb::DeltaDiscoveryRequest none;
  none.set_type_url(address_type);
  none.add_resource_names_subscribe("*");
  none.add_resource_names_unsubscribe("*");
  ASSERT_TRUE(ads.rw->Write(none));
  pb::DeltaDiscoveryResponse first = ads.read();
  EXPECT_TRUE(first.resources().empty()) << "subscribed to nothing";
  ASSERT_TRUE(ads.ack(first));

  pb::DeltaDiscoveryRequest ask;
  ask.set_type_url(address_type);
  ask.add_resource_names_subscribe("/127.0.0.1");
  ask.add_resource_names_subscribe("/10.9.9.9");
  ASSERT_TRUE(ads.rw->Write(ask));
  pb::DeltaDiscoveryResponse got = ads.read();
  EXPECT_EQ(names(got), std::set<std::string>{workload_local});
  ASSERT_EQ(got.resources_size(), 1);
  EXPECT_EQ(std::vector<std::string>(got.resources(0).aliases().begin(), got.resources(0).aliases().end()),
            std::vector<std::string>{"/127.0.0.1"});
  EXPECT_EQ(removed(got), std::set<std::string>{"/10.9.9.9"});
  ASSERT_TRUE(ads.ack(got));

  // The fetched workload changes its IP: it is pushed (held by its name now).
  write_file(dir_ + "/mesh.yaml", replace(mesh_text_, "workloadIps: [\"127.0.0.1\"]", "workloadIps: [\"127.0.0.9\"]"));
  pb::DeltaDiscoveryResponse pushed = ads.read();
  EXPECT_EQ(names(pushed), std::set<std::string>{workload_local});
  ads.rw->WritesDone();
  EXPECT_TRUE(ads.rw->Finish().ok());
}

// An edit reaches open streams as what changed and what went; a file that
// does not parse changes nothing (the next good edit is a difference from
// the last good state, not from nothing).
TEST_F(FakeIstiodTest, EditsArePushedAndABrokenFileKeepsTheState) {
  start();
  AdsStream ads(channel_, context());
  ASSERT_TRUE(ads.subscribe(address_type));
  pb::DeltaDiscoveryResponse first = ads.read();
  ASSERT_TRUE(ads.ack(first));
  ASSERT_TRUE(ads.subscribe(authorization_type));
  ASSERT_TRUE(ads.ack(ads.read()));

  write_file(mesh_path(), "workloads: [\n");
  ASSERT_TRUE(eventually([&] { return read_file(dir_ + "/log").find("mesh.yaml:") != std::string::npos; }))
      << "the broken file was not reported";

  std::string edited = cut(mesh_text_, "- uid: cluster1//v1/Pod/default/local-tcp", "policies:");
  edited = replace(edited, "node: local", "node: elsewhere");
  write_file(mesh_path(), edited);
  pb::DeltaDiscoveryResponse push = ads.read();
  EXPECT_EQ(push.type_url(), address_type);
  EXPECT_EQ(names(push), std::set<std::string>{workload_local});
  EXPECT_EQ(removed(push), std::set<std::string>{workload_tcp});
  EXPECT_NE(versions(push)[workload_local], versions(first)[workload_local]);
  ASSERT_TRUE(ads.ack(push));

  write_file(mesh_path(), cut(edited, "policies:", "services:"));
  push = ads.read();
  EXPECT_EQ(push.type_url(), authorization_type);
  EXPECT_TRUE(push.resources().empty());
  EXPECT_EQ(removed(push), std::set<std::string>{policy});
}

// A reconnecting client names what it holds; it gets only what differs.
TEST_F(FakeIstiodTest, InitialResourceVersionsYieldOnlyTheDifference) {
  start();
  std::map<std::string, std::string> held, held_policies;
  {
    AdsStream first(channel_, context());
    ASSERT_TRUE(first.subscribe(address_type));
    held = versions(first.read());
    ASSERT_TRUE(first.subscribe(authorization_type));
    held_policies = versions(first.read());
    first.ctx->TryCancel();
    EXPECT_EQ(first.rw->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  ASSERT_EQ(held.size(), all_addresses.size());
  held.erase("default/example.com");      // not held: sent
  held[workload_tcp] = "an-old-version";  // stale: sent
  held["default/gone.example"] = "v1";    // no longer exists: removed
  AdsStream second(channel_, context());
  ASSERT_TRUE(second.subscribe(address_type, held));
  pb::DeltaDiscoveryResponse r = second.read();
  EXPECT_EQ(names(r), (std::set<std::string>{"default/example.com", workload_tcp}));
  EXPECT_EQ(removed(r), std::set<std::string>{"default/gone.example"});

  // Holding everything at the right versions still gets an (empty) answer:
  // clients count themselves synced on it.
  ASSERT_EQ(held_policies.size(), 1u);
  ASSERT_TRUE(second.subscribe(authorization_type, held_policies));
  r = second.read();
  EXPECT_EQ(r.type_url(), authorization_type);
  EXPECT_TRUE(r.resources().empty());
  EXPECT_TRUE(r.removed_resources().empty());
}

TEST_F(FakeIstiodTest, CreateCertificateSignsTheCsrsIdentity) {
  start();
  const std::string identity = "spiffe://cluster.local/ns/default/sa/default";
  auth::IstioCertificateRequest request;
  request.set_csr(make_csr(identity));
  request.set_validity_duration(48 * 3600);  // more than the 24 h cap
  auth::IstioCertificateResponse response;
  grpc::Status call = create_certificate(request, response);
  ASSERT_TRUE(call.ok()) << call.error_message();
  ASSERT_EQ(response.cert_chain_size(), 2);
  EXPECT_EQ(response.cert_chain(1), root_bundle());  // one root: the bundle is it
  EXPECT_EQ(verify(response.cert_chain(0), root_bundle()), "");
  auto leaf = parse_certs(response.cert_chain(0));
  ASSERT_EQ(leaf.size(), 1u);
  EXPECT_EQ(uri_sans(leaf[0].get()), std::vector<std::string>{identity});
  EXPECT_EQ(lifetime_seconds(leaf[0].get()), 24 * 3600 + 60);  // from a minute ago

  // A node proxy asking for one of its workloads.
  const std::string workload = "spiffe://cluster.local/ns/apps/sa/web";
  (*request.mutable_metadata()->mutable_fields())["ImpersonatedIdentity"].set_string_value(workload);
  request.set_validity_duration(3600);
  response.Clear();
  call = create_certificate(request, response);
  ASSERT_TRUE(call.ok()) << call.error_message();
  leaf = parse_certs(response.cert_chain(0));
  EXPECT_EQ(uri_sans(leaf[0].get()), std::vector<std::string>{workload});
  EXPECT_EQ(lifetime_seconds(leaf[0].get()), 3600 + 60);
  EXPECT_EQ(status()["certificates_signed"], 2);
}

TEST_F(FakeIstiodTest, AStoppedCaIsUnavailable) {
  start();
  auth::IstioCertificateRequest request;
  request.set_csr(make_csr("spiffe://cluster.local/ns/default/sa/default"));
  auth::IstioCertificateResponse response;
  ASSERT_EQ(post("/ca/stop").status, 200);
  EXPECT_EQ(status()["ca_up"], false);
  EXPECT_EQ(create_certificate(request, response).error_code(), grpc::StatusCode::UNAVAILABLE);
  ASSERT_EQ(post("/ca/start").status, 200);
  EXPECT_EQ(status()["ca_up"], true);
  EXPECT_TRUE(create_certificate(request, response).ok());

  request.set_csr("not a CSR");
  EXPECT_EQ(create_certificate(request, response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(FakeIstiodTest, AWrongTokenIsUnauthenticated) {
  start({"--token", "s3cret"});
  AdsStream wrong(channel_, context("guess"));
  wrong.subscribe(address_type);
  pb::DeltaDiscoveryResponse r;
  EXPECT_FALSE(wrong.rw->Read(&r));
  EXPECT_EQ(wrong.rw->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);

  auth::IstioCertificateRequest request;
  request.set_csr(make_csr("spiffe://cluster.local/ns/default/sa/default"));
  auth::IstioCertificateResponse response;
  EXPECT_EQ(create_certificate(request, response).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(create_certificate(request, response, "s3cret").ok());

  AdsStream right(channel_, context("s3cret"));
  ASSERT_TRUE(right.subscribe(address_type));
  EXPECT_EQ(names(right.read()), all_addresses);
  EXPECT_EQ(status()["streams_opened"], 1);  // the refused one never opened
}

TEST_F(FakeIstiodTest, ResetEndsStreamsUnavailable) {
  start();
  AdsStream ads(channel_, context());
  ASSERT_TRUE(ads.subscribe(address_type));
  ads.read();
  ASSERT_TRUE(eventually([&] { return status()["streams_open"] == 1; }));
  HttpAnswer answer = post("/streams/reset");
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(answer.body, "reset 1 streams\n");
  pb::DeltaDiscoveryResponse r;
  EXPECT_FALSE(ads.rw->Read(&r));
  EXPECT_EQ(ads.rw->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(eventually([&] { return status()["streams_open"] == 0; }));

  AdsStream again(channel_, context());  // the server itself stays up
  ASSERT_TRUE(again.subscribe(address_type));
  EXPECT_EQ(names(again.read()), all_addresses);
}

// Rotation: the bundle holds old then new; new leaves chain to the new
// root; dropping the old leaves the new one alone.
TEST_F(FakeIstiodTest, RootRotationAndDroppingTheOldRoot) {
  start();
  const std::string first_root = root_bundle();
  ASSERT_EQ(post("/root/rotate").status, 200);
  const std::string bundle = root_bundle();
  ASSERT_EQ(parse_certs(bundle).size(), 2u);
  ASSERT_EQ(bundle.substr(0, first_root.size()), first_root);  // oldest first
  const std::string new_root = bundle.substr(first_root.size());

  auth::IstioCertificateRequest request;
  request.set_csr(make_csr("spiffe://cluster.local/ns/default/sa/default"));
  auth::IstioCertificateResponse response;
  grpc::Status call = create_certificate(request, response);  // istiod's own certificate still holds
  ASSERT_TRUE(call.ok()) << call.error_message();
  EXPECT_EQ(response.cert_chain(1), new_root);
  EXPECT_EQ(verify(response.cert_chain(0), bundle), "");
  EXPECT_NE(verify(response.cert_chain(0), first_root), "");

  ASSERT_EQ(post("/root/drop-old").status, 200);
  EXPECT_EQ(root_bundle(), new_root);
  EXPECT_EQ(post("/nowhere").status, 404);
  EXPECT_EQ(http(admin_port_, "GET", "/ca/stop").status, 405);
}

TEST_F(FakeIstiodTest, SigtermExitsZeroWithStreamsOpen) {
  start();
  AdsStream ads(channel_, context());
  ASSERT_TRUE(ads.subscribe(address_type));
  ads.read();
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  int wstatus = 0;
  pid_t done = 0;
  ASSERT_TRUE(eventually([&] { return (done = ::waitpid(pid_, &wstatus, WNOHANG)) == pid_; }));
  pid_ = -1;
  ASSERT_TRUE(WIFEXITED(wstatus));
  EXPECT_EQ(WEXITSTATUS(wstatus), 0);
  pb::DeltaDiscoveryResponse r;
  EXPECT_FALSE(ads.rw->Read(&r));
  EXPECT_EQ(ads.rw->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(FakeIstiodTest, BadFlagsAndABadMeshFileExitTwo) {
  auto exit_code = [](std::vector<std::string> args) {
    args.insert(args.begin(), ZT_FAKE_ISTIOD_BIN);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid = -1;
    EXPECT_EQ(posix_spawn(&pid, ZT_FAKE_ISTIOD_BIN, &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    int wstatus = 0;
    ::waitpid(pid, &wstatus, 0);
    return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
  };
  EXPECT_EQ(exit_code({"--listen", "127.0.0.1:0"}), 2);  // the rest is required
  EXPECT_EQ(exit_code({"--bogus", "1"}), 2);
  write_file(mesh_path(), "workloads: [\n");
  EXPECT_EQ(exit_code({"--listen", "127.0.0.1:0", "--port-file", dir_ + "/port", "--state-dir", dir_ + "/state",
                       "--mesh", mesh_path(), "--admin-listen", "127.0.0.1:0", "--admin-port-file",
                       dir_ + "/admin-port"}),
            2);
}

}  // namespace
}  // namespace zt::e2e::fake_istiod

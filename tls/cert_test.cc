#include "tls/cert.h"

#include <gtest/gtest.h>

#include "tls/ca.h"

namespace zt::tls {
namespace {

const WallTime kNow = from_unix_seconds(1'780'000'000);  // 2026

Identity id(const char* sa) { return Identity("cluster.local", "default", sa); }

TEST(KeyPair, GeneratesP256AndRoundTripsPem) {
  auto key = KeyPair::generate();
  ASSERT_TRUE(key);
  EXPECT_EQ(EVP_PKEY_id(key->get()), EVP_PKEY_EC);
  const std::string pem = key->to_pem();
  EXPECT_NE(pem.find("BEGIN PRIVATE KEY"), std::string::npos);
  auto back = KeyPair::from_pem(pem);
  ASSERT_TRUE(back);
  EXPECT_EQ(EVP_PKEY_cmp(key->get(), back->get()), 1);
}

TEST(KeyPair, BadPemIsAnError) {
  EXPECT_FALSE(KeyPair::from_pem("not a key"));
  EXPECT_FALSE(KeyPair::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
}

TEST(Csr, CarriesOnlyTheUriSanAndVerifies) {
  auto key = KeyPair::generate();
  auto csr = make_csr(*key, id("web"));
  ASSERT_TRUE(csr) << csr.error().message();
  EXPECT_NE(csr->find("BEGIN CERTIFICATE REQUEST"), std::string::npos);
  auto info = parse_csr(*csr);
  ASSERT_TRUE(info) << info.error().message();
  EXPECT_EQ(info->uri_sans, std::vector<std::string>{"spiffe://cluster.local/ns/default/sa/web"});
  EXPECT_EQ(EVP_PKEY_cmp(info->public_key.get(), key->get()), 1);
  // No subject at all (no CN).
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(csr->data(), ptrdiff_t(csr->size())));
  bssl::UniquePtr<X509_REQ> req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  EXPECT_EQ(X509_NAME_entry_count(X509_REQ_get_subject_name(req.get())), 0);
  EXPECT_EQ(X509_REQ_get_signature_nid(req.get()), NID_ecdsa_with_SHA256);
}

TEST(Chain, ParsesLeafFirstRootsLastAndSeveralRoots) {
  auto ca = Ca::create(CaOptions{}, Rng(1), kNow);
  ASSERT_TRUE(ca);
  auto issued = ca->issue(id("web"), std::chrono::hours(24), kNow);
  ASSERT_TRUE(issued) << issued.error().message();
  ASSERT_TRUE(ca->rotate(kNow));
  const std::string pem = to_pem(issued->chain) + to_pem(ca->trust_bundle());
  auto chain = parse_pem_chain(pem);
  ASSERT_TRUE(chain) << chain.error().message();
  ASSERT_EQ(chain->size(), 4u);  // leaf, its root, old root, new root
  EXPECT_FALSE((*chain)[0].is_ca());
  EXPECT_TRUE((*chain)[1].is_ca());
  EXPECT_EQ((*chain)[0].identity()->to_string(), "spiffe://cluster.local/ns/default/sa/web");
}

TEST(Chain, BadBlocksAreErrorsNamingTheBlock) {
  EXPECT_FALSE(parse_pem_chain(""));
  EXPECT_FALSE(parse_pem_chain("garbage"));
  auto ca = Ca::create(CaOptions{}, Rng(1), kNow);
  std::string good = ca->root().to_pem();
  auto r = parse_pem_chain(good + "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("certificate 2"), std::string::npos) << r.error().detail;
}

TEST(Certificate, ValidityWindowAndDerRoundTrip) {
  auto ca = Ca::create(CaOptions{}, Rng(1), kNow);
  auto issued = ca->issue(id("web"), std::chrono::hours(24), kNow);
  const Certificate& leaf = issued->chain[0];
  EXPECT_EQ(leaf.not_before(), kNow - std::chrono::minutes(1));
  EXPECT_EQ(leaf.not_after(), kNow + std::chrono::hours(24));
  EXPECT_TRUE(leaf.valid_at(kNow));
  EXPECT_FALSE(leaf.valid_at(kNow + std::chrono::hours(25)));
  EXPECT_FALSE(leaf.valid_at(kNow - std::chrono::hours(1)));
  auto der = leaf.to_der();
  auto back = Certificate::from_der(der);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->to_der(), der);
  der.push_back(0);  // trailing garbage
  EXPECT_FALSE(Certificate::from_der(der));
}

}  // namespace
}  // namespace zt::tls

namespace zt::tls {
namespace {

TEST(VerifyChain, ChainsToTheRootsAtTheTimeGivenAndNamesTheLeaf) {
  const WallTime now = WallTime(std::chrono::seconds(1'767'225'600));
  auto ca = Ca::create(CaOptions{}, Rng(1), now);
  auto other = Ca::create(CaOptions{}, Rng(2), now);
  ASSERT_TRUE(ca && other);
  const Identity id("cluster.local", "ns", "sa");
  auto issued = ca->issue(id, std::chrono::hours(1), now);
  ASSERT_TRUE(issued);
  auto who = verify_chain(issued->chain, ca->trust_bundle(), now);
  ASSERT_TRUE(who.ok()) << who.error().message();
  EXPECT_EQ(*who, id);
  EXPECT_FALSE(verify_chain(issued->chain, other->trust_bundle(), now).ok());  // another root
  auto late = verify_chain(issued->chain, ca->trust_bundle(), now + std::chrono::hours(2));
  ASSERT_FALSE(late.ok());
  EXPECT_NE(late.error().detail.find("expired"), std::string::npos) << late.error().detail;
  EXPECT_FALSE(verify_chain({}, ca->trust_bundle(), now).ok());
  EXPECT_FALSE(verify_chain(issued->chain, {}, now).ok());
}

}  // namespace
}  // namespace zt::tls

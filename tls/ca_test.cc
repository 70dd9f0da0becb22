#include "tls/ca.h"

#include <gtest/gtest.h>

namespace zt::tls {
namespace {

const WallTime kNow = from_unix_seconds(1'780'000'000);

TEST(Ca, SignsACsrForTheCallersIdentity) {
  auto ca = Ca::create(CaOptions{}, Rng(1), kNow);
  ASSERT_TRUE(ca) << ca.error().message();
  Identity web("cluster.local", "shop", "web");
  auto key = KeyPair::generate();
  auto chain = ca->sign_csr(*make_csr(*key, web), web, std::chrono::hours(24), kNow);
  ASSERT_TRUE(chain) << chain.error().message();
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ((*chain)[0].identity()->to_string(), web.to_string());
  EXPECT_EQ((*chain)[0].uri_sans().size(), 1u);
  EXPECT_EQ(X509_verify((*chain)[0].get(), bssl::UniquePtr<EVP_PKEY>(X509_get_pubkey(ca->root().get())).get()), 1);
}

TEST(Ca, RefusesACsrForSomeoneElseOrAnotherTrustDomain) {
  auto ca = Ca::create(CaOptions{}, Rng(1), kNow);
  Identity web("cluster.local", "shop", "web"), db("cluster.local", "shop", "db");
  auto key = KeyPair::generate();
  auto r = ca->sign_csr(*make_csr(*key, web), db, std::chrono::hours(1), kNow);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("but the caller is"), std::string::npos);
  Identity foreign("other.domain", "shop", "web");
  EXPECT_FALSE(ca->sign_csr(*make_csr(*key, foreign), foreign, std::chrono::hours(1), kNow));
  EXPECT_FALSE(ca->sign_csr("-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n", web,
                            std::chrono::hours(1), kNow));
}

TEST(Ca, TwoCasAroundOneSavedRootIssueChainsEachOtherTrusts) {
  auto first = Ca::create(CaOptions{}, Rng(1), kNow);
  ASSERT_TRUE(first);
  auto key = KeyPair::from_pem(first->root_key().to_pem());
  auto cert = Certificate::from_pem(first->root().to_pem());
  ASSERT_TRUE(key && cert);
  auto second = Ca::from_root(CaOptions{}, Rng(2), std::move(*key), std::move(*cert));
  ASSERT_TRUE(second) << second.error().message();
  auto issued = second->issue(Identity("cluster.local", "shop", "web"), std::chrono::hours(1), kNow);
  ASSERT_TRUE(issued);
  EXPECT_EQ(X509_verify(issued->chain[0].get(), bssl::UniquePtr<EVP_PKEY>(X509_get_pubkey(first->root().get())).get()),
            1);
  // A key that is not the certificate's, or a leaf posing as a root, is refused.
  auto other = KeyPair::generate();
  EXPECT_FALSE(Ca::from_root(CaOptions{}, Rng(3), std::move(*other), first->root()));
  auto leaf_key = KeyPair::from_pem(issued->key.to_pem());
  EXPECT_FALSE(Ca::from_root(CaOptions{}, Rng(3), std::move(*leaf_key), issued->chain[0]));
}

TEST(Ca, RotationKeepsOldRootTrustedUntilDropped) {
  auto ca = Ca::create(CaOptions{}, Rng(1), kNow);
  const Certificate old_root = ca->root();
  ASSERT_TRUE(ca->rotate(kNow));
  EXPECT_EQ(ca->trust_bundle().size(), 2u);
  EXPECT_NE(ca->root().to_der(), old_root.to_der());
  auto issued = ca->issue(Identity("cluster.local", "a", "b"), std::chrono::hours(1), kNow);
  EXPECT_EQ(X509_verify(issued->chain[0].get(), bssl::UniquePtr<EVP_PKEY>(X509_get_pubkey(ca->root().get())).get()), 1);  // the new root signs
  ca->drop_old_roots();
  ASSERT_EQ(ca->trust_bundle().size(), 1u);
  EXPECT_EQ(ca->trust_bundle()[0].to_der(), ca->root().to_der());
}

TEST(Ca, PinnedSignaturesGiveCertificatesOfOneSize) {
  CaOptions opts;
  opts.pin_signature_sizes = true;
  auto ca = Ca::create(opts, Rng(1), kNow);
  size_t size = 0;
  for (int i = 0; i < 20; ++i) {
    auto issued = ca->issue(Identity("cluster.local", "a", "b"), std::chrono::hours(1), kNow);
    const size_t s = issued->chain[0].to_der().size();
    if (i == 0) size = s;
    EXPECT_EQ(s, size);
  }
}

}  // namespace
}  // namespace zt::tls

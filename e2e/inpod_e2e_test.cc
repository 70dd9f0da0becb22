// In-pod mode end to end on real network namespaces (root only; each case
// skips, saying why, elsewhere). Two nodes: two `ztunnel` processes in
// in-pod mode, each with its own `zt-cni agent`; four pods made by
// `zt-cni add-pod` (namespace, veth, redirection rules), two per node, each
// running an application (a thread inside the pod's namespace that greets
// every connection with its pod's name and the client address it sees):
//
//   node1: a (e2e/sa-a)  b (e2e/sa-b)      node2: c (e2e/sa-c)  d (locked/sa-d)
//   policy: namespace "locked" denies service account e2e/sa-b
//
// The cases: a's connection to c is captured by a's rules, carried over
// HBONE and both ztunnels log the verified identities; the policy refuses
// b -> d; c deleted while a's clients connect and its address reused at
// once by a pod of another identity (e) never reaches e on c's behalf;
// ztunnel restarted: new connections recover within seconds; the agent
// restarted: every pod keeps its listeners and connections.
//
// Figures are printed as "[figure] ..." lines. ZT_INPOD_E2E_KEEP=1 keeps
// the temporary directory (logs of ztunnel, agents and zt-cni).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "e2e/inpod_harness.h"

namespace zt::e2e::inpod {
namespace {

constexpr uint16_t kAppPort = 8080;

void figure(const std::string& what, double seconds) {
  std::printf("[figure] %s: %.3f s\n", what.c_str(), seconds);
  std::fflush(stdout);
  ::testing::Test::RecordProperty(what, std::to_string(seconds));
}

// Retries a connection until `want` answers; the time it took, or a
// negative number after `timeout` (the last failure in `last`).
double until_reachable(const Pod& from, const Pod& want, std::chrono::milliseconds timeout, Reply* last = nullptr) {
  const auto t0 = Clock::now();
  Reply r;
  while (Clock::now() - t0 < timeout) {
    r = exchange(from, want.ip, kAppPort, 1s);
    if (r.ok && r.pod == want.name) return seconds_since(t0);
    std::this_thread::sleep_for(20ms);
  }
  if (last) *last = r;
  return -1;
}

class InpodE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = cannot_run(); !why.empty()) GTEST_SKIP() << why;
    mesh_ = std::make_unique<InpodMesh>();
    mesh_->define('a', 0, "e2e", "sa-a");
    mesh_->define('b', 0, "e2e", "sa-b");
    mesh_->define('c', 1, "e2e", "sa-c");
    mesh_->define('d', 1, "locked", "sa-d");
    mesh_->set_policies(
        "- name: deny-sa-b\n"
        "  namespace: locked\n"
        "  scope: Namespace\n"
        "  action: Deny\n"
        "  rules:\n"
        "  - - - serviceAccounts: [{namespace: e2e, serviceAccount: sa-b}]\n");
    mesh_->write_mesh_files();
    for (int n : {0, 1}) mesh_->start_agent(n);
    for (char k : {'a', 'b', 'c', 'd'}) {
      Ran r = mesh_->add_pod(mesh_->pod(k));
      ASSERT_EQ(r.code, 0) << "add-pod " << k << ":\n" << r.output;
      apps_[k] = std::make_unique<PodApp>(mesh_->pod(k), kAppPort);
      ASSERT_EQ(apps_[k]->error(), "");
    }
    for (int n : {0, 1}) {
      const auto t0 = Clock::now();
      mesh_->start_ztunnel(n);
      ASSERT_TRUE(mesh_->wait_ready(n, 15s)) << mesh_->node(n).name << " not ready";
      figure("ready with 2 pods, " + mesh_->node(n).name + " (spawn to /healthz/ready 200)", seconds_since(t0));
      // Ready means the agent's snapshot is applied: both pods run.
      auto dump = mesh_->config_dump(n);
      ASSERT_TRUE(dump);
      ASSERT_EQ((*dump)["inpod"]["pods"].size(), 2u) << (*dump)["inpod"].dump();
      for (const auto& p : (*dump)["inpod"]["pods"]) EXPECT_EQ(p["state"], "Running") << p.dump();
    }
  }

  void TearDown() override {
    if (!mesh_) return;
    if (HasFailure()) {
      for (int n : {0, 1}) {
        std::string log = mesh_->ztunnel_log(n);
        if (log.size() > 20000) log = "[...]" + log.substr(log.size() - 20000);  // the end tells
        std::fprintf(stderr, "--- %s ztunnel log ---\n%s--- %s agent log ---\n%s---\n", mesh_->node(n).name.c_str(),
                     log.c_str(), mesh_->node(n).name.c_str(), mesh_->node(n).agent.output().c_str());
      }
    }
    apps_.clear();
    mesh_.reset();
  }

  Pod& pod(char k) { return mesh_->pod(k); }

  // The access records of node `n` that match every field of `want`,
  // waiting up to 5 s for at least `at_least` of them (a record is written
  // when its connection ends).
  std::vector<AccessRecord> records(int n, const AccessRecord& want, size_t at_least = 1) {
    std::vector<AccessRecord> out;
    const auto deadline = Clock::now() + 5s;
    do {
      out.clear();
      for (AccessRecord& r : access_records(mesh_->ztunnel_log(n))) {
        bool match = true;
        for (const auto& [k, v] : want) match = match && r[k] == v;
        if (match) out.push_back(std::move(r));
      }
      if (out.size() >= at_least) break;
      std::this_thread::sleep_for(50ms);
    } while (Clock::now() < deadline);
    return out;
  }

  std::unique_ptr<InpodMesh> mesh_;
  std::map<char, std::unique_ptr<PodApp>> apps_;
};

// (a) a -> c across nodes: a's own rules send the connection to node1's
// 15001 inside a; it reaches c over HBONE (c's 15008), and c's application
// sees a's address (original source). Both ends log the identities they
// verified; same-node traffic (a -> b) and the other way (c -> a) work too.
TEST_F(InpodE2e, CrossNodeTrafficIsCapturedAndCarriedOverHboneWithIdentities) {
  Pod &a = pod('a'), &b = pod('b'), &c = pod('c');
  Reply last;
  const double first = until_reachable(a, c, 10s, &last);
  ASSERT_GE(first, 0) << "a -> c never answered: " << last.error;
  figure("first a -> c connection after ready", first);
  Reply r = exchange(a, c.ip, kAppPort);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.pod, c.name);
  EXPECT_EQ(r.peer, a.ip) << "c's application does not see a's address (ENABLE_ORIG_SRC)";

  // node1's outbound record of exactly this connection (a's port).
  auto out = records(0, {{"direction", "outbound"}, {"src.addr", a.ip + ":" + std::to_string(r.local_port)}});
  ASSERT_EQ(out.size(), 1u) << "node1 did not proxy the connection (not captured?)";
  EXPECT_EQ(out[0]["level"], "info") << out[0]["error"];
  EXPECT_EQ(out[0]["src.workload"], a.name);
  EXPECT_EQ(out[0]["src.identity"], a.identity());
  EXPECT_EQ(out[0]["dst.addr"], c.ip + ":15008") << "not carried over HBONE";
  EXPECT_EQ(out[0]["dst.hbone_addr"], c.ip + ":" + std::to_string(kAppPort));
  EXPECT_EQ(out[0]["dst.workload"], c.name);
  EXPECT_EQ(out[0]["dst.identity"], c.identity());
  // node2's inbound records: the client's identity as its certificate proved it.
  auto in = records(1, {{"direction", "inbound"}, {"dst.workload", c.name}, {"level", "info"}}, 2);
  ASSERT_GE(in.size(), 1u) << "node2 logged no inbound connection to c";
  for (auto& rec : in) {
    EXPECT_EQ(rec["src.identity"], a.identity());
    EXPECT_EQ(rec["dst.identity"], c.identity());
    EXPECT_EQ(rec["src.workload"], a.name);
  }

  Reply same_node = exchange(a, b.ip, kAppPort);
  EXPECT_TRUE(same_node.ok && same_node.pod == b.name) << same_node.error;
  EXPECT_EQ(same_node.peer, a.ip);
  const double back = until_reachable(c, a, 5s);
  EXPECT_GE(back, 0) << "c -> a";
  EXPECT_FALSE(records(0, {{"direction", "inbound"}, {"src.identity", c.identity()}, {"dst.workload", a.name}}).empty());
}

// (b) namespace "locked" denies sa-b: b -> d is refused at d's inbound (the
// application never sees it), a -> d is allowed.
TEST_F(InpodE2e, L4PolicyDeniesOnePairOnly) {
  Pod &a = pod('a'), &b = pod('b'), &d = pod('d');
  ASSERT_GE(until_reachable(a, d, 10s), 0) << "a -> d";
  const size_t accepted = apps_['d']->accepted();
  for (int i = 0; i < 3; ++i) {
    Reply r = exchange(b, d.ip, kAppPort);
    EXPECT_FALSE(r.ok) << "b -> d answered by " << r.pod;
  }
  EXPECT_EQ(apps_['d']->accepted(), accepted) << "a denied connection reached d's application";
  auto denied = records(1, {{"direction", "inbound"}, {"src.identity", b.identity()}, {"dst.workload", d.name}}, 3);
  ASSERT_EQ(denied.size(), 3u);
  for (auto& rec : denied) EXPECT_EQ(rec["response_flags"], "DENY");
  Reply ok = exchange(a, d.ip, kAppPort);
  EXPECT_TRUE(ok.ok && ok.pod == d.name) << ok.error;
}

// (c) While clients in a connect to c, c is deleted and its address goes at
// once to e (another identity) on the same node. node2 learns first; node1
// keeps its old view (c at that address) until its connections for c have
// met e's certificate (and been refused), then 0.5 s more. Every connection
// a's clients got an answer on is matched with node1's record of it (by a's
// port): the pod that answered is the one node1 meant, with the identity
// node1 verified. Then new connections reach e.
TEST_F(InpodE2e, AReusedAddressNeverReachesTheWrongPod) {
  Pod &a = pod('a'), &c = pod('c');
  ASSERT_GE(until_reachable(a, c, 10s), 0);
  Pod& e = mesh_->define('e', 1, "e2e", "sa-e", c.key - 'a' + 1);  // c's address
  mesh_->set_in_mesh('e', false);
  mesh_->write_mesh_files();

  struct Attempt {
    Reply reply;
    double at = 0;  // seconds from the start
  };
  std::mutex mu;
  std::vector<Attempt> attempts;
  std::atomic<bool> stop{false};
  // Each attempt has a client port of its own (a's namespace is ours), so
  // node1's record of it is the one with that source address.
  std::atomic<uint16_t> next_port{20000};
  const auto t0 = Clock::now();
  std::vector<std::thread> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back([&, a_copy = a, ip = c.ip] {
      while (!stop && next_port < 65000) {
        Attempt at{exchange(a_copy, ip, kAppPort, 3s, next_port++), 0};
        at.at = seconds_since(t0);
        std::lock_guard lock(mu);
        attempts.push_back(std::move(at));
      }
    });
  }
  std::this_thread::sleep_for(300ms);

  Ran del = mesh_->del_pod(c);
  ASSERT_EQ(del.code, 0) << del.output;
  apps_.erase('c');
  mesh_->set_in_mesh('c', false);
  mesh_->set_in_mesh('e', true);
  mesh_->write_mesh_file(1);  // node2 (e's) first
  Ran add = mesh_->add_pod(e);
  ASSERT_EQ(add.code, 0) << add.output;
  apps_['e'] = std::make_unique<PodApp>(e, kAppPort);
  ASSERT_EQ(apps_['e']->error(), "");
  const double reused_at = seconds_since(t0);
  // node1 keeps the old view until the danger is real: its connections for
  // c reach e's proxies, which present sa-e (node2 learnt e and has its
  // certificate), and node1 refuses them.
  const std::string mismatch = "server is " + e.identity() + ", not an expected identity";
  for (const auto until = Clock::now() + 20s; Clock::now() < until; std::this_thread::sleep_for(20ms)) {
    if (mesh_->ztunnel_log(0).find(mismatch) != std::string::npos) break;
  }
  std::this_thread::sleep_for(500ms);
  mesh_->write_mesh_file(0);  // node1 learns last
  const double node1_told_at = seconds_since(t0);

  // Until a's clients get answers from e, and a little longer.
  double reachable_at = -1;
  const auto deadline = Clock::now() + 15s;
  while (reachable_at < 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    std::lock_guard lock(mu);
    for (const Attempt& at : attempts) {
      if (at.reply.ok && at.reply.pod == e.name && (reachable_at < 0 || at.at < reachable_at)) reachable_at = at.at;
    }
  }
  std::this_thread::sleep_for(500ms);
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_GE(reachable_at, 0) << "e never answered at the reused address";
  figure("reused address reachable (new pod enrolled to first answer from it; node1 held the old view meanwhile)",
         reachable_at - reused_at);
  figure("reused address reachable (node1's mesh file rewritten to first answer; the file is polled each second)",
         reachable_at - node1_told_at);

  size_t from_c = 0, from_e = 0, failed = 0;
  for (const Attempt& at : attempts) {
    if (!at.reply.ok) {
      ++failed;
      continue;
    }
    at.reply.pod == c.name ? ++from_c : at.reply.pod == e.name ? ++from_e : 0;
    EXPECT_TRUE(at.reply.pod == c.name || at.reply.pod == e.name) << at.reply.pod;
  }
  std::printf("[figure] connections: %zu answered by c, %zu by e, %zu failed (in the switch-over)\n", from_c, from_e,
              failed);
  EXPECT_GT(from_c, 0u);
  EXPECT_GT(from_e, 0u);
  // Each answered connection against node1's record of it (written as the
  // connection ends: wait until they are all there).
  std::map<std::string, AccessRecord> node1;  // by source address
  for (const auto deadline = Clock::now() + 15s; Clock::now() < deadline; std::this_thread::sleep_for(50ms)) {
    node1.clear();
    for (AccessRecord& r : access_records(mesh_->ztunnel_log(0))) {
      if (r["direction"] == "outbound") node1[r["src.addr"]] = std::move(r);
    }
    const bool all = std::all_of(attempts.begin(), attempts.end(), [&](const Attempt& at) {
      return !at.reply.ok || node1.contains(a.ip + ":" + std::to_string(at.reply.local_port));
    });
    if (all) break;
  }
  for (const Attempt& at : attempts) {
    if (!at.reply.ok) continue;
    const std::string src = a.ip + ":" + std::to_string(at.reply.local_port);
    auto it = node1.find(src);
    ASSERT_NE(it, node1.end()) << "no node1 record for " << src;
    const AccessRecord* rec = &it->second;
    const Pod& answered = at.reply.pod == c.name ? c : e;
    EXPECT_EQ(rec->count("dst.workload") ? rec->at("dst.workload") : "", answered.name)
        << "a connection node1 carried for " << (rec->count("dst.workload") ? rec->at("dst.workload") : "?")
        << " reached " << answered.name << " at " << at.at << " s";
    EXPECT_EQ(rec->count("dst.identity") ? rec->at("dst.identity") : "", answered.identity());
  }
  // The stale view was exercised: node1 still sent connections for c to the
  // address, and e's certificate (sa-e) failed node1's check for sa-c.
  size_t mismatched = 0;
  for (const auto& [src, r] : node1) {
    if (r.count("error") && r.at("error").find(mismatch) != std::string::npos) {
      ++mismatched;
    }
  }
  std::printf("[figure] connections node1 carried for c that met e's certificate and were refused: %zu\n", mismatched);
  EXPECT_GT(mismatched, 0u) << "the switch-over never sent a connection for c to e: the case proved nothing";
  // And from e's side: every connection its application accepted is one
  // node1 carried for e (a client that gave up after the accept still left
  // node1's record, so records of any outcome count; once their number
  // stops growing, all are written).
  size_t meant_for_e = 0;
  for (const auto until = Clock::now() + 15s; Clock::now() < until;) {
    size_t n = 0;
    for (AccessRecord& r : access_records(mesh_->ztunnel_log(0))) {
      n += r["direction"] == "outbound" && r["dst.workload"] == e.name;
    }
    if (n == meant_for_e && n >= apps_['e']->accepted()) break;
    meant_for_e = n;
    std::this_thread::sleep_for(300ms);
  }
  EXPECT_LE(apps_['e']->accepted(), meant_for_e) << "e accepted connections node1 did not carry for e";
  for (int i = 0; i < 5; ++i) {
    Reply r = exchange(a, e.ip, kAppPort);
    EXPECT_TRUE(r.ok && r.pod == e.name) << "new connection " << i << ": " << r.error << r.pod;
  }
}

// (d) Each ztunnel in turn is stopped and started again; the pods' listeners
// are gone meanwhile. New connections (a -> c) work again within seconds.
TEST_F(InpodE2e, ZtunnelRestartRecoversWithinSeconds) {
  Pod &a = pod('a'), &c = pod('c');
  ASSERT_GE(until_reachable(a, c, 10s), 0);
  for (int n : {1, 0}) {
    SCOPED_TRACE(mesh_->node(n).name);
    EXPECT_EQ(mesh_->stop_ztunnel(n, SIGTERM), 0);
    EXPECT_FALSE(exchange(a, c.ip, kAppPort, 1s).ok) << "answered with " << mesh_->node(n).name << " down";
    const auto t0 = Clock::now();
    mesh_->start_ztunnel(n);
    Reply last;
    const double recovered = until_reachable(a, c, 15s, &last);
    ASSERT_GE(recovered, 0) << "no recovery: " << last.error;
    EXPECT_LT(recovered, 5.0);
    figure("recovery after restarting " + mesh_->node(n).name + "'s ztunnel (spawn to first a -> c answer)",
           seconds_since(t0));
    EXPECT_TRUE(mesh_->wait_ready(n, 5s));
  }
}

// (e) Each node's agent in turn is stopped and started again: ztunnel keeps
// every pod's listeners (the same sockets: same inodes), an open connection
// keeps working, new ones too, and ztunnel reconnects to the new agent
// without starting any pod again.
TEST_F(InpodE2e, AgentRestartKeepsEveryPodsListeners) {
  Pod &a = pod('a'), &c = pod('c');
  ASSERT_GE(until_reachable(a, c, 10s), 0);
  std::map<char, std::vector<std::string>> listeners;
  for (char k : {'a', 'b', 'c', 'd'}) {
    listeners[k] = mesh_->pod_listeners(pod(k));
    EXPECT_GE(listeners[k].size(), 4u);  // 15001, 15006, 15008 and the app's 8080
    for (const std::string& l : listeners[k]) EXPECT_FALSE(l.ends_with("ino=")) << "no inode for " << l;
  }
  PodConn open(a, c.ip, kAppPort);
  ASSERT_TRUE(open.greeting().ok) << open.greeting().error;
  ASSERT_TRUE(open.echo("before"));
  for (int n : {0, 1}) {
    SCOPED_TRACE(mesh_->node(n).name);
    auto before = mesh_->config_dump(n);
    ASSERT_TRUE(before);
    const auto connects = (*before)["inpod"]["connects"].get<uint64_t>();
    const auto pods_before = (*before)["inpod"]["pods"];
    ASSERT_EQ(pods_before.size(), 2u);
    EXPECT_EQ(mesh_->stop_agent(n), 0);
    // A second without the agent: ztunnel's reconnect backoff grows meanwhile.
    const auto down = Clock::now();
    int during = 0, during_ok = 0;
    while (seconds_since(down) < 1.0) {
      Reply r = exchange(a, c.ip, kAppPort);
      ++during;
      during_ok += r.ok && r.pod == c.name;
      std::this_thread::sleep_for(50ms);
    }
    EXPECT_EQ(during_ok, during) << "connections failed with the agent down";
    EXPECT_TRUE(open.echo("agent down"));
    const auto t0 = Clock::now();
    mesh_->start_agent(n);
    double reconnected = -1;
    std::optional<nlohmann::json> after;
    while (seconds_since(t0) < 20) {
      after = mesh_->config_dump(n);
      if (after && (*after)["inpod"]["connects"].get<uint64_t>() > connects &&
          (*after)["inpod"]["snapshotApplied"] == true && (*after)["inpod"]["connected"] == true) {
        reconnected = seconds_since(t0);
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_GE(reconnected, 0) << "ztunnel did not reconnect to the new agent";
    figure("agent reconnect, " + mesh_->node(n).name + " (agent started to snapshot applied)", reconnected);
    EXPECT_EQ((*after)["inpod"]["pods"], pods_before) << "a pod was started again or changed state";
  }
  for (char k : {'a', 'b', 'c', 'd'}) {
    EXPECT_EQ(mesh_->pod_listeners(pod(k)), listeners[k]) << "pod " << k << "'s listeners changed";
  }
  EXPECT_TRUE(open.echo("after"));
  Reply r = exchange(a, c.ip, kAppPort);
  EXPECT_TRUE(r.ok && r.pod == c.name) << r.error;
}

}  // namespace
}  // namespace zt::e2e::inpod

// The Kubernetes client against a recorded API server: list and watch answers in the API's own
// JSON (tests/data/kube/, written in the shape a v1 API server sends: PodList with
// metadata.resourceVersion, watch events one JSON object per line in a chunked body) replayed over
// HTTP on 127.0.0.1. No API server can run on this machine. The replay pages a recorded list by the
// request's limit and continue, as the server does.
#include "faultline/agent/kube.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "../common/replay_server.h"

namespace faultline::agent {
namespace {

using testing::ReplayServer;

std::string Data(const std::string& name) {
  std::ifstream f(std::string(FAULTLINE_SOURCE_DIR) + "/tests/data/kube/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string Param(const std::string& target, const std::string& name) {
  const size_t q = target.find('?');
  if (q == std::string::npos) return {};
  std::string rest = target.substr(q + 1);
  for (size_t start = 0; start <= rest.size();) {
    size_t amp = rest.find('&', start);
    if (amp == std::string::npos) amp = rest.size();
    const std::string kv = rest.substr(start, amp - start);
    if (kv.rfind(name + "=", 0) == 0) return kv.substr(name.size() + 1);
    start = amp + 1;
  }
  return {};
}

// One page of a recorded list: `limit` items from index `continue` (the replay's own token).
std::string Page(const std::string& list_file, const std::string& target) {
  nlohmann::json list = nlohmann::json::parse(Data(list_file));
  const size_t limit = std::stoul(Param(target, "limit"));
  const std::string cont = Param(target, "continue");
  const size_t from = cont.empty() ? 0 : std::stoul(cont.substr(1));
  nlohmann::json page = list;
  page["items"] = nlohmann::json::array();
  for (size_t i = from; i < std::min(from + limit, list["items"].size()); ++i) page["items"].push_back(list["items"][i]);
  if (from + limit < list["items"].size()) page["metadata"]["continue"] = "p" + std::to_string(from + limit);
  return ReplayServer::Answer(200, page.dump());
}

// A watch answer: the recorded events as chunks; `finish` ends the body properly, else the
// connection just drops (a watch lost mid-stream).
void StreamEvents(int fd, const std::string& events_file, bool finish) {
  ReplayServer::Write(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
  std::istringstream in(Data(events_file));
  for (std::string line; std::getline(in, line);) {
    line += "\n";
    std::ostringstream chunk;
    chunk << std::hex << line.size() << "\r\n" << line << "\r\n";
    ReplayServer::Write(fd, chunk.str());
  }
  if (finish) ReplayServer::Write(fd, "0\r\n\r\n");
}

// Holds a watch connection open (a watch with nothing more to say) until released, or at most
// until `bound` after it was made: then the test fails, saying so, and the connection closes, so
// that a test that forgot to release fails instead of hanging until ctest's timeout.
class Hold {
 public:
  explicit Hold(std::chrono::seconds bound = std::chrono::seconds(30))
      : bound_(bound), deadline_(std::chrono::steady_clock::now() + bound) {}
  // On the server's thread.
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_until(lock, deadline_, [&] { return released_; })) return;
    released_ = true;  // later watches are not held again: one failure, not one per reconnect
    ADD_FAILURE() << "a held watch was not released within " << bound_.count()
                  << " s of the test's start (a ReleaseOnExit must follow the ReplayServer)";
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }

 private:
  const std::chrono::seconds bound_;
  const std::chrono::steady_clock::time_point deadline_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
};

// Releases a Hold when it goes out of scope, on every path (a failed ASSERT returns early).
// Declared after the ReplayServer, it runs before the server's destructor joins its thread.
class ReleaseOnExit {
 public:
  explicit ReleaseOnExit(Hold& hold) : hold_(hold) {}
  ReleaseOnExit(const ReleaseOnExit&) = delete;
  ReleaseOnExit& operator=(const ReleaseOnExit&) = delete;
  ~ReleaseOnExit() { hold_.Release(); }

 private:
  Hold& hold_;
};

KubeWatchOptions PodsOnNode1() {
  KubeWatchOptions o;
  o.path = "/api/v1/pods";
  o.kind = "Pod";
  o.selector = "fieldSelector=spec.nodeName%3Dnode-1";
  o.page_size = 1;
  o.backoff_min = std::chrono::milliseconds(20);
  o.backoff_max = std::chrono::milliseconds(100);
  return o;
}

TEST(KubeWatch, ListsPagedWatchesResumesAfterADropAndListsAgainAfter410Gone) {
  Hold hold;
  int lists = 0;
  ReplayServer api("", [&](const ReplayServer::Request& r, int fd) {
    EXPECT_EQ(Param(r.target, "fieldSelector"), "spec.nodeName%3Dnode-1") << r.target;
    EXPECT_NE(r.head.find("Authorization: Bearer t0ken"), std::string::npos);
    if (Param(r.target, "watch") != "1") {
      // The first list (two pages of one), then the list after the 410 (three pages).
      if (Param(r.target, "continue").empty()) lists++;
      ReplayServer::Write(fd, Page(lists == 1 ? "pods_list_1.json" : "pods_list_2.json", r.target));
      return;
    }
    EXPECT_EQ(Param(r.target, "allowWatchBookmarks"), "true");
    const std::string rv = Param(r.target, "resourceVersion");
    if (rv == "1005") return StreamEvents(fd, "pods_watch_1.jsonl", /*finish=*/false);
    if (rv == "1020") return StreamEvents(fd, "pods_watch_2.jsonl", /*finish=*/true);
    if (rv == "2005" || rv == "2010") {
      if (rv == "2005") StreamEvents(fd, "pods_watch_3.jsonl", /*finish=*/false);
      hold.Wait();
      return;
    }
    ADD_FAILURE() << "unexpected watch from " << rv;
  });
  ReleaseOnExit release(hold);
  KubeConfig c{"http://127.0.0.1:" + std::to_string(api.port()), "t0ken", ""};
  {
    KubeWatch w(c, PodsOnNode1());
    ASSERT_TRUE(w.WaitFor([](const KubeWatch::Stats& s) { return s.resource_version == "2010"; },
                          std::chrono::seconds(20)))
        << w.stats().resource_version;
    const KubeWatch::Stats s = w.stats();
    EXPECT_EQ(s.lists, 2u);
    EXPECT_EQ(s.gone, 1u);
    EXPECT_EQ(s.bookmarks, 1u);
    EXPECT_EQ(s.events, 3u);  // ADDED and MODIFIED before the drop, DELETED after the relist
    EXPECT_GE(s.errors, 1u);  // the dropped watch
    const auto objects = w.Objects();
    ASSERT_EQ(objects.size(), 2u);
    EXPECT_EQ(objects.at("shop/api-7d9c5b6f4-x2x9q").ips, std::vector<std::string>{"10.244.1.17"});
    EXPECT_EQ(objects.at("shop/api-7d9c5b6f4-x2x9q").workload, "api");
    EXPECT_EQ(objects.at("ops/backup-28411200-q2w4z").workload, "backup");
    EXPECT_EQ(w.ByIp("10.244.1.10")->name, "backup-28411200-q2w4z");
    EXPECT_FALSE(w.ByIp("10.244.1.8").has_value());  // db-0 was gone from the second list
    EXPECT_FALSE(w.ByIp("10.244.1.9").has_value());  // node-agent's pod was deleted
    EXPECT_EQ(w.ByUid("5c3e2f0e-9a4b-4c1d-8e2f-0a1b2c3d4e5f")->ns, "shop");
  }
  // The requests in order: two pages, the watch from the list's version, the watch resumed from
  // the bookmark's, the list again, the watch from its version.
  std::vector<std::string> seen;
  for (const std::string& t : api.targets()) {
    seen.push_back(Param(t, "watch") == "1" ? "watch " + Param(t, "resourceVersion")
                                            : "list " + Param(t, "continue"));
  }
  ASSERT_GE(seen.size(), 8u);
  EXPECT_EQ(std::vector<std::string>(seen.begin(), seen.begin() + 8),
            (std::vector<std::string>{"list ", "list p1", "watch 1005", "watch 1020", "list ", "list p1",
                                      "list p2", "watch 2005"}));
}

TEST(KubeWatch, AWatchAnswered410ListsAgainAndAFullStoreCountsWhatItLeavesOut) {
  Hold hold;
  int lists = 0;
  ReplayServer api("", [&](const ReplayServer::Request& r, int fd) {
    if (Param(r.target, "watch") != "1") {
      lists++;
      return ReplayServer::Write(fd, Page("pods_list_1.json", r.target));
    }
    if (lists == 1) return ReplayServer::Write(fd, ReplayServer::Answer(410, "{\"kind\":\"Status\",\"code\":410}"));
    hold.Wait();
  });
  ReleaseOnExit release(hold);
  KubeWatchOptions o = PodsOnNode1();
  o.page_size = 500;
  o.max_objects = 1;
  KubeWatch w({"http://127.0.0.1:" + std::to_string(api.port()), "", ""}, o);
  ASSERT_TRUE(w.WaitFor([](const KubeWatch::Stats& s) { return s.lists == 2 && s.watches == 2; },
                        std::chrono::seconds(20)));
  EXPECT_EQ(w.stats().gone, 1u);
  EXPECT_EQ(w.stats().over_limit, 2u);  // one of two pods left out, twice
  EXPECT_EQ(w.Objects().size(), 1u);
}

TEST(KubeWatch, MalformedAnswersAreCountedAndRetriedNotFatal) {
  Hold hold;
  int lists = 0;
  ReplayServer api("", [&](const ReplayServer::Request& r, int fd) {
    if (Param(r.target, "watch") != "1") {
      // A broken list first, then a good one.
      return ReplayServer::Write(fd, ++lists == 1 ? ReplayServer::Answer(200, "{\"metadata\":{},\"items\":3}")
                                                  : Page("pods_list_1.json", r.target));
    }
    hold.Wait();
  });
  ReleaseOnExit release(hold);
  KubeWatch w({"http://127.0.0.1:" + std::to_string(api.port()), "", ""}, PodsOnNode1());
  ASSERT_TRUE(w.WaitFor([](const KubeWatch::Stats& s) { return s.lists == 1; }, std::chrono::seconds(20)));
  EXPECT_EQ(w.stats().errors, 1u);
  EXPECT_EQ(w.Objects().size(), 2u);
}

TEST(KubeObjects, PodsServicesAndTheirErrors) {
  const auto services = nlohmann::json::parse(Data("services_list.json"));
  auto api = ParseKubeObject("Service", services["items"][0].dump());
  ASSERT_TRUE(api.ok()) << api.status().message();
  EXPECT_EQ(api->ns + "/" + api->name, "shop/api");
  EXPECT_EQ(api->ips, std::vector<std::string>{"10.96.12.34"});
  auto headless = ParseKubeObject("Service", services["items"][1].dump());
  ASSERT_TRUE(headless.ok());
  EXPECT_TRUE(headless->ips.empty());
  EXPECT_EQ(ParseKubeObject("Pod", "[]").status().message(), "not a JSON object");
  EXPECT_EQ(ParseKubeObject("Pod", "{}").status().message(), "no metadata");
  EXPECT_EQ(ParseKubeObject("Pod", "{\"metadata\":{\"name\":1}}").status().message(), "metadata.name is not a string");
  EXPECT_EQ(ParseKubeObject("Pod", "{\"metadata\":{\"name\":\"a\"},\"status\":{\"podIPs\":{}}}").status().message(),
            "status.podIPs is not an array");
  EXPECT_EQ(ParseKubeObject("Pod", "{\"metadata\":{\"name\":\"a\",\"ownerReferences\":[3]}}").status().message(),
            "metadata.ownerReferences[] is not an object");
}

TEST(KubeObjects, WorkloadsFromOwnerReferences) {
  EXPECT_EQ(WorkloadOfOwner("ReplicaSet", "api-7d9c5b6f4", "api-7d9c5b6f4-x2x9q"), "api");
  EXPECT_EQ(WorkloadOfOwner("ReplicaSet", "plain-rs", "plain-rs-x2x9q"), "plain-rs");
  EXPECT_EQ(WorkloadOfOwner("Job", "backup-28411200", "backup-28411200-q2w4z"), "backup");
  EXPECT_EQ(WorkloadOfOwner("Job", "migrate", "migrate-q2w4z"), "migrate");
  EXPECT_EQ(WorkloadOfOwner("StatefulSet", "db", "db-0"), "db");
  EXPECT_EQ(WorkloadOfOwner("", "", "static-web-node-1"), "static-web-node-1");
}

TEST(KubeConfigTest, InClusterReadsTheServiceAccountAndTheEnvironment) {
  const std::string root = ::testing::TempDir() + "fl-kube-" + std::to_string(getpid());
  const std::string dir = root + "/var/run/secrets/kubernetes.io/serviceaccount";
  std::filesystem::create_directories(dir);
  unsetenv("KUBERNETES_SERVICE_HOST");
  EXPECT_EQ(InClusterConfig(root).status().message(),
            "not in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set");
  setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  EXPECT_EQ(InClusterConfig(root).status().message(), "no service-account token at " + dir + "/token");
  { std::ofstream(dir + "/token") << "eyJhbGciOi.token\n"; }
  EXPECT_EQ(InClusterConfig(root).status().message(), "no service-account CA at " + dir + "/ca.crt");
  { std::ofstream(dir + "/ca.crt") << "-----BEGIN CERTIFICATE-----\n"; }
  auto c = InClusterConfig(root);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->token, "eyJhbGciOi.token");
  EXPECT_EQ(c->ca_file, dir + "/ca.crt");
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  EXPECT_EQ(InClusterConfig(root)->server, "https://[fd00::1]:443");
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace faultline::agent

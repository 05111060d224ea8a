// Who may administer the real server (ModelService): without admin_token_file only callers on
// the server's own host; with it, whoever presents the token. The "remote" caller is this
// machine reached through one of its non-loopback addresses, so that the server sees a peer
// address outside 127.0.0.0/8 exactly as it would see another host's.
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <csignal>
#include <fstream>

#include "tests/server/support/server_fixture.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;
using grpc::StatusCode;

// The first IPv4 address of an interface that is up and not loopback; "" when there is none.
std::string NonLoopbackAddress() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* i = list; i && found.empty(); i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    if (!(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    const auto* a = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    if ((ntohl(a->sin_addr.s_addr) >> 24) == 127) continue;
    char buf[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf)) found = buf;
  }
  freeifaddrs(list);
  return found;
}

class AdminAccessE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = NonLoopbackAddress();
    if (host_.empty())
      GTEST_SKIP() << "this machine has no non-loopback IPv4 address: no remote peer to test";
  }
  // Listens on every address, so that the server is reachable both ways.
  void Start(const std::string& extra) {
    std::string error;
    ASSERT_TRUE(server_.Start("model_repository: \"" + StandardRepository() + "\"\n" + extra,
                              {"--listen=0.0.0.0:0"}, &error))
        << error;
    remote_ = grpc::CreateChannel(host_ + ":" + std::to_string(server_.port()),
                                  grpc::InsecureChannelCredentials());
  }
  std::unique_ptr<v1::ModelService::Stub> RemoteModels() {
    return v1::ModelService::NewStub(remote_);
  }
  static grpc::Status Unload(v1::ModelService::Stub* stub, const std::string& name,
                             const std::string& authorization = "") {
    grpc::ClientContext c;
    if (!authorization.empty()) c.AddMetadata("authorization", authorization);
    v1::UnloadModelRequest u;
    u.set_name(name);
    v1::UnloadModelResponse r;
    return stub->UnloadModel(&c, u, &r);
  }
  static int ModelCount(v1::ModelService::Stub* stub, const std::string& authorization = "") {
    grpc::ClientContext c;
    if (!authorization.empty()) c.AddMetadata("authorization", authorization);
    v1::ListModelsResponse r;
    grpc::Status s = stub->ListModels(&c, {}, &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return r.models_size();
  }

  std::string host_;
  ServerProcess server_;
  std::shared_ptr<grpc::Channel> remote_;
};

TEST_F(AdminAccessE2E, WithoutTokenOnlyLocalCallersAdminister) {
  Start("");
  auto remote = RemoteModels();
  // Translation is public: the remote caller gets answers.
  {
    auto stub = v1::TranslationService::NewStub(remote_);
    grpc::ClientContext c;
    v1::TranslateResponse r;
    grpc::Status s = stub->Translate(&c, Request("A dog."), &r);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  // Every ModelService call from it is refused, and the answer says how to allow it.
  grpc::Status s = Unload(remote.get(), "en-de-base");
  EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_NE(s.error_message().find("admin_token_file"), std::string::npos) << s.error_message();
  {
    grpc::ClientContext c;
    v1::LoadModelRequest l;
    l.set_name("en-de-alt");
    v1::LoadModelResponse r;
    EXPECT_EQ(remote->LoadModel(&c, l, &r).error_code(), StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext c;
    v1::SetRouteRequest req;
    req.mutable_route()->set_source_language("en");
    req.mutable_route()->set_target_language("de");
    auto* t = req.mutable_route()->add_targets();
    t->mutable_variant()->set_name("en-de-alt");
    t->set_weight(1);
    v1::SetRouteResponse r;
    EXPECT_EQ(remote->SetRoute(&c, req, &r).error_code(), StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext c;
    v1::ListModelsResponse r;
    EXPECT_EQ(remote->ListModels(&c, {}, &r).error_code(), StatusCode::PERMISSION_DENIED);
    grpc::ClientContext c2;
    v1::GetRoutesResponse routes;
    EXPECT_EQ(remote->GetRoutes(&c2, {}, &routes).error_code(), StatusCode::PERMISSION_DENIED);
  }
  // Nothing changed, and the local caller administers as before.
  auto local = server_.Models();
  EXPECT_EQ(ModelCount(local.get()), 3);
  {
    grpc::ClientContext c;
    v1::GetRoutesResponse routes;
    EXPECT_TRUE(local->GetRoutes(&c, {}, &routes).ok());
    EXPECT_EQ(routes.routes_size(), 0);
  }
  EXPECT_TRUE(Unload(local.get(), "en-de-alt").ok());
  EXPECT_EQ(ModelCount(local.get()), 2);
  EXPECT_EQ(server_.Stop(SIGTERM), 0);
  // The refusal names the caller: the server really saw the non-loopback address.
  EXPECT_NE(server_.Log().find("admin call refused reason=not-local peer=ipv4:" + host_ + ":"),
            std::string::npos)
      << server_.Log();
}

TEST_F(AdminAccessE2E, TokenOpensAdministrationToOtherHosts) {
  const std::string dir = MakeTempDir("token");
  std::ofstream(dir + "/token") << "remote-admin-token\n";
  Start("admin_token_file: \"" + dir + "/token\"\n");
  auto remote = RemoteModels();
  EXPECT_EQ(Unload(remote.get(), "en-de-alt").error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Unload(remote.get(), "en-de-alt", "Bearer wrong").error_code(),
            StatusCode::UNAUTHENTICATED);
  // With a token configured, local callers need it too.
  auto local = server_.Models();
  EXPECT_EQ(Unload(local.get(), "en-de-alt").error_code(), StatusCode::UNAUTHENTICATED);
  grpc::Status s = Unload(remote.get(), "en-de-alt", "Bearer remote-admin-token");
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(ModelCount(remote.get(), "Bearer remote-admin-token"), 2);
}

}  // namespace
}  // namespace mixserve

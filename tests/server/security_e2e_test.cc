// Security settings of the real server: TLS and mutual TLS on the public port, the admin
// token kept out of the logs, and the per-connection stream limit. (Bearer-token refusals,
// path traversal through model names, message size and per-client rate limits have their
// own tests: admin_e2e_test.cc, bad_input_e2e_test.cc, robustness_e2e_test.cc.)
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tests/server/support/server_fixture.h"

namespace mixserve {
namespace {
using namespace mixserve::testing;
using grpc::StatusCode;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A self-signed certificate (its own CA) for 127.0.0.1; false when openssl is missing.
bool MakeCert(const std::string& dir, const std::string& name) {
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=" + name +
                          " -addext subjectAltName=IP:127.0.0.1 -keyout " + dir + "/" + name +
                          ".key -out " + dir + "/" + name + ".pem >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

grpc::Status TryTranslate(std::shared_ptr<grpc::Channel> channel) {
  auto stub = v1::TranslationService::NewStub(channel);
  v1::TranslateResponse r;
  grpc::ClientContext c;
  c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return stub->Translate(&c, Request("A dog."), &r);
}

std::shared_ptr<grpc::Channel> TlsChannel(const std::string& address, const std::string& dir,
                                          const std::string& client /* "" for none */) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadAll(dir + "/server.pem");
  if (!client.empty()) {
    o.pem_private_key = ReadAll(dir + "/" + client + ".key");
    o.pem_cert_chain = ReadAll(dir + "/" + client + ".pem");
  }
  return grpc::CreateChannel(address, grpc::SslCredentials(o));
}

TEST(SecurityE2E, MutualTlsOnThePublicPort) {
  const std::string dir = MakeTempDir("tls");
  if (!MakeCert(dir, "server") || !MakeCert(dir, "client") || !MakeCert(dir, "stranger"))
    GTEST_SKIP() << "openssl cannot make certificates";
  ServerProcess server;
  std::string error;
  ASSERT_TRUE(server.Start("model_repository: \"" + StandardRepository() + "\"\n" +
                               "tls { cert_file: \"" + dir + "/server.pem\" key_file: \"" + dir +
                               "/server.key\" client_ca_file: \"" + dir + "/client.pem\" }\n",
                           {}, &error))
      << error;
  const std::string address = "127.0.0.1:" + std::to_string(server.port());
  // Plain text, TLS without a client certificate, and a certificate the server does not
  // trust are all refused at the handshake.
  EXPECT_EQ(TryTranslate(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))
                .error_code(),
            StatusCode::UNAVAILABLE);
  EXPECT_EQ(TryTranslate(TlsChannel(address, dir, "")).error_code(), StatusCode::UNAVAILABLE);
  EXPECT_EQ(TryTranslate(TlsChannel(address, dir, "stranger")).error_code(),
            StatusCode::UNAVAILABLE);
  // The trusted client gets translations and the admin service.
  auto channel = TlsChannel(address, dir, "client");
  grpc::Status s = TryTranslate(channel);
  EXPECT_TRUE(s.ok()) << s.error_message();
  v1::ListModelsResponse list;
  grpc::ClientContext c;
  EXPECT_TRUE(v1::ModelService::NewStub(channel)->ListModels(&c, {}, &list).ok());
  EXPECT_EQ(list.models_size(), 3);
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

TEST(SecurityE2E, AdminTokenNeverReachesTheLog) {
  const std::string dir = MakeTempDir("token");
  const std::string token = "tok-7f3a9c1e5b2d", guess = "guess-0c4e8a2f";
  std::ofstream(dir + "/token") << token << "\n";
  ServerProcess server;
  std::string error;
  ASSERT_TRUE(server.Start("model_repository: \"" + StandardRepository() + "\"\n" +
                               "admin_token_file: \"" + dir + "/token\"\n",
                           {"--log_level=debug"}, &error))
      << error;
  auto models = server.Models();
  auto call = [&](const std::string& authorization) {
    grpc::ClientContext c;
    if (!authorization.empty()) c.AddMetadata("authorization", authorization);
    v1::UnloadModelRequest u;
    u.set_name("en-de-alt");
    v1::UnloadModelResponse r;
    return models->UnloadModel(&c, u, &r);
  };
  EXPECT_EQ(call("").error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call("Bearer " + guess).error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call(guess).error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(call("Bearer " + token + "x").error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(call("Bearer " + token).ok());
  // Translation requests carrying the token as metadata do not log it either.
  {
    auto stub = server.Translation();
    grpc::ClientContext c;
    c.AddMetadata("authorization", "Bearer " + token);
    v1::TranslateResponse r;
    EXPECT_TRUE(stub->Translate(&c, Request("A dog."), &r).ok());
  }
  EXPECT_EQ(server.Stop(SIGTERM), 0);
  const std::string log = server.Log();
  EXPECT_EQ(log.find(token), std::string::npos) << log;
  EXPECT_EQ(log.find(guess), std::string::npos) << log;
  EXPECT_NE(log.find("admin call refused reason=no-token"), std::string::npos) << log;
  EXPECT_NE(log.find("admin call refused reason=wrong-token"), std::string::npos) << log;
  EXPECT_NE(log.find("admin UnloadModel model=en-de-alt"), std::string::npos) << log;
}

TEST(SecurityE2E, ConcurrentStreamsPerConnectionAreLimited) {
  ServerProcess server;
  std::string error;
  ASSERT_TRUE(server.Start("model_repository: \"" + StandardRepository() + "\"\n" +
                               "limits { max_concurrent_streams: 2 }\n",
                           {}, &error))
      << error;
  auto channel = server.Channel();
  auto stub = server.Translation();
  // Two open streams take the connection's two slots ...
  grpc::ClientContext c1, c2;
  auto s1 = stub->TranslateStream(&c1);
  auto s2 = stub->TranslateStream(&c2);
  for (auto* s : {s1.get(), s2.get()}) {
    ASSERT_TRUE(s->Write(Request("A dog.")));
    v1::TranslateResponse r;
    ASSERT_TRUE(s->Read(&r));  // both streams are really open on the server
  }
  // ... so a third call on the same connection waits: it cannot start within a second.
  {
    v1::TranslateResponse r;
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    EXPECT_EQ(stub->Translate(&c, Request("A cat."), &r).error_code(),
              StatusCode::DEADLINE_EXCEEDED);
  }
  // Another connection is not affected, and a slot freed on this one is used at once.
  EXPECT_TRUE(TryTranslate(grpc::CreateCustomChannel(
                               server.address(), grpc::InsecureChannelCredentials(),
                               [] {
                                 grpc::ChannelArguments a;
                                 a.SetInt("grpc.use_local_subchannel_pool", 1);
                                 return a;
                               }()))
                  .ok());
  s1->WritesDone();
  EXPECT_TRUE(s1->Finish().ok());
  grpc::Status s = TryTranslate(channel);
  EXPECT_TRUE(s.ok()) << s.error_message();
  s2->WritesDone();
  EXPECT_TRUE(s2->Finish().ok());
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace mixserve

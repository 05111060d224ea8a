// mixserve-cli: translate text and administer a mixserve server from the command line.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "clients/cli/args.h"
#include "clients/cli/flags.h"
#include "clients/cli/output.h"
#include "clients/cli/translate_document.h"
#include "clients/cli/translate_lines.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "mixserve/v1/model_service.grpc.pb.h"
#include "mixserve/v1/translation.grpc.pb.h"

namespace mixserve::cli {
namespace {

namespace pb = ::mixserve::v1;

int Usage(const std::string& error) { return flags::ReportUsageError("mixserve-cli", error); }

int RpcError(const grpc::Status& s) {
  static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                 "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                                 "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int code = s.error_code();
  std::cerr << "mixserve-cli: " << (code >= 0 && code <= 16 ? kNames[code] : "ERROR") << ": "
            << s.error_message() << "\n";
  return 1;
}

bool ParseVariant(const std::string& s, std::string* name, int64_t* version) {
  return cli::ParseVariantRef(s, name, version);
}

struct Connection {
  std::shared_ptr<grpc::Channel> channel;
  long deadline_ms = 30000;
  std::string token;

  void Prepare(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  }
};

class Translator {
 public:
  Translator(const Connection& conn, Args& args) : conn_(conn), args_(args) {}

  int Run() {
    if (!args_.Has("from") || !args_.Has("to"))
      return Usage("translate needs --from and --to");
    pb::TranslateRequest proto;
    proto.set_source_language(args_.Get("from"));
    proto.set_target_language(args_.Get("to"));
    if (args_.Has("variant")) {
      std::string name;
      int64_t version;
      if (!ParseVariant(args_.Get("variant"), &name, &version))
        return Usage("--variant expects NAME or NAME:VERSION, got '" + args_.Get("variant") + "'");
      proto.mutable_variant()->set_name(name);
      proto.mutable_variant()->set_version(version);
    }
    proto.set_routing_key(args_.Get("routing-key"));
    auto* o = proto.mutable_options();
    o->set_beam_size(static_cast<int>(args_.GetInt("beam", 0)));
    o->set_max_output_tokens(static_cast<int>(args_.GetInt("max-tokens", 0)));
    o->set_n_best(static_cast<int>(args_.GetInt("n-best", 0)));
    if (args_.Has("length-penalty")) {
      try {
        o->set_length_penalty(std::stof(args_.Get("length-penalty")));
      } catch (...) {
        return Usage("--length-penalty expects a number");
      }
    }
    window_ = args_.GetInt("window", 64);
    if (!args_.ok()) return Usage(args_.error());
    if (window_ < 1 || window_ > 100000) return Usage("--window must be between 1 and 100000");
    json_ = args_.Has("json");
    stub_ = pb::TranslationService::NewStub(conn_.channel);

    if (args_.Has("document")) return Document(proto);
    if (args_.Has("segments")) return Usage("--segments needs --document");
    if (args_.Has("file")) {
      std::ifstream in(args_.Get("file"));
      if (!in) return Usage("cannot read --file " + args_.Get("file"));
      return Stream(proto, in);
    }
    if (args_.positionals().size() > 1) {
      std::string text;
      for (size_t i = 1; i < args_.positionals().size(); ++i)
        text += (i > 1 ? " " : "") + args_.positionals()[i];
      proto.set_text(text);
      proto.set_reference(args_.Get("reference"));
      return Unary(proto);
    }
    return Stream(proto, std::cin);
  }

 private:
  void Print(const pb::TranslateResponse& r) { PrintTranslation(r, json_, std::cout); }

  std::vector<std::pair<std::string, std::string>> Metadata() const {
    if (conn_.token.empty()) return {};
    return {{"authorization", "Bearer " + conn_.token}};
  }

  // The whole input (TEXT, --file or stdin) as one document.
  int Document(const pb::TranslateRequest& base) {
    if (base.options().n_best() > 1) return Usage("--n-best is not available with --document");
    if (args_.Has("reference")) return Usage("--reference is not available with --document");
    DocumentOptions o;
    std::stringstream text;
    if (args_.Has("file")) {
      std::ifstream in(args_.Get("file"));
      if (!in) return Usage("cannot read --file " + args_.Get("file"));
      text << in.rdbuf();
    } else if (args_.positionals().size() > 1) {
      for (size_t i = 1; i < args_.positionals().size(); ++i)
        text << (i > 1 ? " " : "") << args_.positionals()[i];
    } else {
      text << std::cin.rdbuf();
    }
    o.stub = stub_.get();
    auto& r = o.request;
    r.set_text(text.str());
    r.set_source_language(base.source_language());
    r.set_target_language(base.target_language());
    if (base.has_variant()) *r.mutable_variant() = base.variant();
    r.set_routing_key(base.routing_key());
    *r.mutable_options() = base.options();
    r.set_return_segments(args_.Has("segments"));
    o.deadline = std::chrono::milliseconds(conn_.deadline_ms);
    o.json = json_;
    o.metadata = Metadata();
    return TranslateDocument(o, std::cout, std::cerr);
  }

  int Unary(const pb::TranslateRequest& req) {
    grpc::ClientContext ctx;
    conn_.Prepare(&ctx);
    pb::TranslateResponse resp;
    const grpc::Status s = stub_->Translate(&ctx, req, &resp);
    if (!s.ok()) return RpcError(s);
    Print(resp);
    return 0;
  }

  // Every line of `in` through TranslateStream (clients/cli/translate_lines.h).
  int Stream(const pb::TranslateRequest& base, std::istream& in) {
    LineOptions o;
    o.stub = stub_.get();
    o.base = base;
    o.window = static_cast<int>(window_);
    o.line_deadline = std::chrono::milliseconds(conn_.deadline_ms);
    o.json = json_;
    o.metadata = Metadata();
    return LineTranslator(std::move(o)).Run(in, std::cout, std::cerr);
  }

  const Connection& conn_;
  Args& args_;
  bool json_ = false;
  long window_ = 64;
  std::unique_ptr<pb::TranslationService::Stub> stub_;
};

int Health(const Connection& conn, const Args& args) {
  auto stub = grpc::health::v1::Health::NewStub(conn.channel);
  grpc::health::v1::HealthCheckRequest req;
  if (args.positionals().size() > 1) req.set_service(args.positionals()[1]);
  grpc::health::v1::HealthCheckResponse resp;
  grpc::ClientContext ctx;
  conn.Prepare(&ctx);
  const grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) return RpcError(s);
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) << "\n";
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

int Admin(const Connection& conn, const std::string& cmd, Args& args) {
  auto stub = pb::ModelService::NewStub(conn.channel);
  grpc::ClientContext ctx;
  conn.Prepare(&ctx);
  const auto& pos = args.positionals();
  auto version_arg = [&](int64_t* v) {
    *v = 0;
    if (pos.size() < 3) return true;
    try {
      size_t used = 0;
      *v = std::stoll(pos[2], &used);
      return used == pos[2].size() && *v >= 0;
    } catch (...) {
      return false;
    }
  };
  grpc::Status s;
  if (cmd == "models") {
    pb::ListModelsRequest req;
    if (pos.size() > 1) req.set_name(pos[1]);
    pb::ListModelsResponse resp;
    s = stub->ListModels(&ctx, req, &resp);
    if (!s.ok()) return RpcError(s);
    if (args.Has("json")) {
      std::cout << ToJson(resp) << "\n";
      return 0;
    }
    for (const auto& m : resp.models())
      for (const auto& v : m.versions())
        std::cout << m.name() << "\t" << v.version() << "\t" << m.source_language() << "-"
                  << m.target_language() << "\t" << pb::ModelState_Name(v.state()) << "\t"
                  << v.parameter_count() << "\t" << v.device()
                  << (v.message().empty() ? "" : "\t" + v.message()) << "\n";
    return 0;
  }
  if (cmd == "load" || cmd == "unload") {
    if (pos.size() < 2) return Usage(cmd + " needs a model NAME");
    int64_t version;
    if (!version_arg(&version)) return Usage("VERSION must be a non-negative integer");
    if (cmd == "load") {
      pb::LoadModelRequest req;
      req.set_name(pos[1]);
      req.set_version(version);
      pb::LoadModelResponse resp;
      s = stub->LoadModel(&ctx, req, &resp);
      if (!s.ok()) return RpcError(s);
      std::cout << pos[1] << "\t" << resp.status().version() << "\t"
                << pb::ModelState_Name(resp.status().state()) << "\n";
    } else {
      pb::UnloadModelRequest req;
      req.set_name(pos[1]);
      req.set_version(version);
      pb::UnloadModelResponse resp;
      s = stub->UnloadModel(&ctx, req, &resp);
      if (!s.ok()) return RpcError(s);
      std::cout << "unloaded " << pos[1] << (version ? ":" + std::to_string(version) : "")
                << "\n";
    }
    return 0;
  }
  if (cmd == "routes") {
    pb::GetRoutesResponse resp;
    s = stub->GetRoutes(&ctx, pb::GetRoutesRequest(), &resp);
    if (!s.ok()) return RpcError(s);
    for (const auto& r : resp.routes()) std::cout << ToJson(r) << "\n";
    return 0;
  }
  // set-route
  if (!args.Has("from") || !args.Has("to")) return Usage("set-route needs --from and --to");
  pb::SetRouteRequest req;
  auto* route = req.mutable_route();
  route->set_source_language(args.Get("from"));
  route->set_target_language(args.Get("to"));
  std::stringstream targets(args.Get("targets"));
  std::string item;
  while (std::getline(targets, item, ',')) {
    const auto eq = item.rfind('=');
    std::string name;
    int64_t version;
    double weight = 1;
    try {
      if (eq != std::string::npos) weight = std::stod(item.substr(eq + 1));
    } catch (...) {
      return Usage("bad weight in --targets item '" + item + "'");
    }
    if (!ParseVariant(item.substr(0, eq), &name, &version))
      return Usage("--targets expects NAME[:VERSION]=WEIGHT,..., got '" + item + "'");
    auto* t = route->add_targets();
    t->mutable_variant()->set_name(name);
    t->mutable_variant()->set_version(version);
    t->set_weight(weight);
  }
  if (args.Has("shadow")) {
    std::string name;
    int64_t version;
    if (!ParseVariant(args.Get("shadow"), &name, &version))
      return Usage("--shadow expects NAME[:VERSION]");
    route->mutable_shadow()->set_name(name);
    route->mutable_shadow()->set_version(version);
    try {
      route->set_shadow_fraction(std::stod(args.Get("shadow-fraction", "1")));
    } catch (...) {
      return Usage("--shadow-fraction expects a number");
    }
  }
  pb::SetRouteResponse resp;
  s = stub->SetRoute(&ctx, req, &resp);
  if (!s.ok()) return RpcError(s);
  std::cout << ToJson(resp.route()) << "\n";
  return 0;
}

int Main(int argc, char** argv) {
  flags::Invocation invocation;
  const int status = flags::Parse(CliProgram(), argc, argv, &invocation);
  if (status >= 0) return status;
  const std::string cmd = invocation.command;
  Args args(std::move(invocation));

  Connection conn;
  conn.deadline_ms = args.GetInt("deadline-ms", 30000);
  if (conn.deadline_ms <= 0) return Usage("--deadline-ms must be positive");
  conn.token = args.Get("token");
  if (args.Has("token-file")) {
    std::ifstream in(args.Get("token-file"));
    if (!in) return Usage("cannot read --token-file " + args.Get("token-file"));
    std::getline(in, conn.token);
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  if (args.Has("tls-ca")) {
    std::ifstream in(args.Get("tls-ca"));
    if (!in) return Usage("cannot read --tls-ca " + args.Get("tls-ca"));
    std::stringstream ca;
    ca << in.rdbuf();
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ca.str();
    creds = grpc::SslCredentials(o);
  }
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(64 << 20);
  conn.channel = grpc::CreateCustomChannel(args.Get("target", "localhost:8500"), creds,
                                           channel_args);

  if (cmd == "translate") {
    Translator t(conn, args);
    return t.Run();
  }
  if (cmd == "health") return Health(conn, args);
  return Admin(conn, cmd, args);
}

}  // namespace
}  // namespace mixserve::cli

int main(int argc, char** argv) { return mixserve::cli::Main(argc, argv); }

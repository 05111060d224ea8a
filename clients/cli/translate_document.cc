#include "clients/cli/translate_document.h"

#include <grpcpp/grpcpp.h>

#include <thread>

#include "clients/cli/output.h"

namespace mixserve::cli {

int TranslateDocument(const DocumentOptions& o, std::ostream& out, std::ostream& err) {
  const auto deadline = std::chrono::system_clock::now() + o.deadline;
  Backoff backoff(o.retry);
  v1::TranslateDocumentResponse resp;
  grpc::Status status;
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline);
    for (const auto& [k, v] : o.metadata) ctx.AddMetadata(k, v);
    status = o.stub->TranslateDocument(&ctx, o.request, &resp);
    if (status.ok() || !IsRetryable(status.error_code())) break;
    const auto delay = backoff.Delay(attempt);
    if (std::chrono::system_clock::now() + delay >= deadline) break;
    std::this_thread::sleep_for(delay);
  }
  if (!status.ok()) {
    err << "mixserve-cli: " << StatusCodeName(status.error_code()) << ": "
        << status.error_message() << "\n";
    return 1;
  }
  if (o.json) {
    out << ToJson(resp) << "\n";
  } else if (o.request.return_segments()) {
    for (const auto& s : resp.segments()) out << ToJson(s) << "\n";
  } else {
    out << resp.translation();
    if (resp.translation().empty() || resp.translation().back() != '\n') out << "\n";
  }
  out.flush();
  return 0;
}

}  // namespace mixserve::cli

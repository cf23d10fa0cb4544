#include "services/grpc/grpc_status.h"

#include <cstdint>
#include <string>

#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace convocore::grpc_service {
namespace {

// google.rpc.Status (google/rpc/status.proto), whose generated code no
// Debian package ships: int32 code = 1; string message = 2;
// repeated google.protobuf.Any details = 3. Its wire format is fixed for
// good; the Go and Python client tests decode it with the real type.
constexpr std::uint32_t kCodeTag = (1 << 3) | 0;     // varint
constexpr std::uint32_t kMessageTag = (2 << 3) | 2;  // length-delimited
constexpr std::uint32_t kDetailsTag = (3 << 3) | 2;  // length-delimited

void WriteBytes(std::uint32_t tag, absl::string_view bytes,
                google::protobuf::io::CodedOutputStream& out) {
  out.WriteTag(tag);
  out.WriteVarint32(static_cast<std::uint32_t>(bytes.size()));
  out.WriteRaw(bytes.data(), static_cast<int>(bytes.size()));
}

}  // namespace

std::string EncodeRpcStatus(const absl::Status& status) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.WriteTag(kCodeTag);
    coded.WriteVarint32(static_cast<std::uint32_t>(status.code()));
    WriteBytes(kMessageTag, status.message(), coded);
    status.ForEachPayload(
        [&](absl::string_view type_url, const absl::Cord& payload) {
          google::protobuf::Any any;
          any.set_type_url(std::string(type_url));
          any.set_value(std::string(payload));
          WriteBytes(kDetailsTag, any.SerializeAsString(), coded);
        });
  }
  return out;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  bool has_payload = false;
  status.ForEachPayload(
      [&](absl::string_view, const absl::Cord&) { has_payload = true; });
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::string message(status.message());
  if (!has_payload) return grpc::Status(code, std::move(message));
  return grpc::Status(code, std::move(message), EncodeRpcStatus(status));
}

}  // namespace convocore::grpc_service

#include "services/auth/subscriber_tokens.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace convocore::auth {
namespace {

namespace v1 = convocore::webhooks::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string HexDigest(const std::string& token) {
  const TokenDigest digest = DigestOf(token);
  return absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string File(const std::vector<std::string>& tokens) {
  std::string text = "{\"tokens\": [\n";
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    absl::StrAppend(&text, i == 0 ? "" : ",\n", tokens[i]);
  }
  return absl::StrCat(text, "\n]}\n");
}

std::string Token(const std::string& name, const std::string& token,
                  const std::string& types) {
  return absl::StrCat("  {\"name\": \"", name, "\", \"sha256\": \"",
                      HexDigest(token), "\", \"event_types\": [", types, "]}");
}

TEST(DigestTest, IsSha256) {
  EXPECT_EQ(HexDigest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(SubscriberTokensTest, FindsEachTokenByItsValueAndNeverByItsDigest) {
  absl::StatusOr<SubscriberTokens> tokens = SubscriberTokens::Parse(
      File({Token("crm", "s3cret-crm", "\"lead_captured\", \"form_submitted\""),
            Token("ops", "s3cret-ops", "\"*\"")}));
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  const SubscriberGrant* crm = tokens->Find("s3cret-crm");
  ASSERT_NE(crm, nullptr);
  EXPECT_EQ(crm->name, "crm");
  EXPECT_FALSE(crm->all_types);
  EXPECT_THAT(crm->types, ElementsAre(v1::EVENT_TYPE_LEAD_CAPTURED,
                                      v1::EVENT_TYPE_FORM_SUBMITTED));
  const SubscriberGrant* ops = tokens->Find("s3cret-ops");
  ASSERT_NE(ops, nullptr);
  EXPECT_TRUE(ops->all_types);
  EXPECT_TRUE(ops->Allows(v1::EVENT_TYPE_OTHER));
  EXPECT_FALSE(crm->Allows(v1::EVENT_TYPE_OTHER));
  EXPECT_EQ(tokens->Find("s3cret-crm "), nullptr);
  EXPECT_EQ(tokens->Find(""), nullptr);
  EXPECT_EQ(tokens->Find(HexDigest("s3cret-crm")), nullptr);
  EXPECT_EQ(tokens->FindByDigest(DigestOf("s3cret-ops")), ops);
}

TEST(SubscriberTokensTest, AnEmptyListIsValidAndAdmitsNobody) {
  absl::StatusOr<SubscriberTokens> tokens =
      SubscriberTokens::Parse("{\"tokens\": []}");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_THAT(tokens->grants(), IsEmpty());
  EXPECT_EQ(tokens->Find("anything"), nullptr);
}

struct BadFile {
  std::string name;
  std::string text;
  std::string error;  // a substring of the message, "line N: ..." included
};

class BadFileTest : public ::testing::TestWithParam<BadFile> {};

TEST_P(BadFileTest, IsRefusedWithTheLineAndTheReason) {
  absl::StatusOr<SubscriberTokens> tokens =
      SubscriberTokens::Parse(GetParam().text);
  ASSERT_FALSE(tokens.ok());
  EXPECT_EQ(tokens.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(tokens.status().message(), HasSubstr(GetParam().error));
}

INSTANTIATE_TEST_SUITE_P(
    Tokens, BadFileTest,
    ::testing::Values(
        BadFile{"NotJson", "{\"tokens\": [\n  {\"name\": \"a\",,}\n]}",
                "line 2: not JSON"},
        BadFile{"Empty", "", "line 1: not JSON"},
        BadFile{"TrailingText", "{\"tokens\": []}\nxyz",
                "text after the end of the JSON object"},
        BadFile{"NoTokens", "{\n}", "no \"tokens\" list"},
        BadFile{"RootIsAList", "[]", "expected an object holding \"tokens\""},
        BadFile{"TokensIsAnObject", "{\"tokens\": {}}",
                "\"tokens\" must be a list"},
        BadFile{"UnknownRootKey", "{\"tokens\": [], \"tokenz\": []}",
                "unknown key \"tokenz\""},
        BadFile{"UnknownType",
                File({Token("a", "t1", "\"lead_captured\""),
                      Token("b", "t2", "\"lead_capture\"")}),
                "line 3: unknown event type \"lead_capture\""},
        BadFile{"UpperCaseType", File({Token("a", "t1", "\"LEAD_CAPTURED\"")}),
                "unknown event type \"LEAD_CAPTURED\""},
        BadFile{"OtherIsNotAType", File({Token("a", "t1", "\"other\"")}),
                "unknown event type \"other\""},
        BadFile{"EmptyTypes", File({Token("a", "t1", "")}),
                "token \"a\" has no \"event_types\""},
        BadFile{"MissingTypes",
                "{\"tokens\": [{\"name\": \"a\", \"sha256\": \"" +
                    HexDigest("x") + "\"}]}",
                "has no \"event_types\""},
        BadFile{"ShortDigest",
                "{\"tokens\": [{\"name\": \"a\", \"sha256\": \"abcd\", "
                "\"event_types\": [\"*\"]}]}",
                "64 hex digits"},
        BadFile{"MissingDigest",
                "{\"tokens\": [{\"name\": \"a\", \"event_types\": [\"*\"]}]}",
                "token \"a\" needs one of \"sha256\""},
        BadFile{"DigestAndCertificate",
                "{\"tokens\": [{\"name\": \"a\", \"sha256\": \"" +
                    HexDigest("x") +
                    "\", \"certificate\": \"a.internal\", "
                    "\"event_types\": [\"*\"]}]}",
                "needs one of \"sha256\""},
        BadFile{"SameCertificateTwice",
                "{\"tokens\": [{\"name\": \"a\", \"certificate\": \"c\", "
                "\"event_types\": [\"*\"]}, {\"name\": \"b\", "
                "\"certificate\": \"c\", \"event_types\": [\"*\"]}]}",
                "name the same certificate"},
        BadFile{"MissingName",
                "{\"tokens\": [{\"sha256\": \"" + HexDigest("x") +
                    "\", \"event_types\": [\"*\"]}]}",
                "a token has no \"name\""},
        BadFile{"SameNameTwice",
                File({Token("a", "t1", "\"*\""), Token("a", "t2", "\"*\"")}),
                "the name \"a\" is used twice"},
        BadFile{"SameDigestTwice",
                File({Token("a", "t1", "\"*\""), Token("b", "t1", "\"*\"")}),
                "tokens \"a\" and \"b\" have the same sha256"},
        BadFile{"UnknownTokenKey",
                "{\"tokens\": [{\"name\": \"a\", \"role\": \"x\"}]}",
                "unknown key \"role\""},
        BadFile{"NotAWorkspaceLabel",
                "{\"tokens\": [{\"name\": \"a\", \"workspaces\": [\"Acme\"]}]}",
                "\"Acme\" is not a workspace label"},
        BadFile{"EmptyWorkspaces",
                "{\"tokens\": [{\"name\": \"a\", \"sha256\": \"" +
                    HexDigest("x") +
                    "\", \"event_types\": [\"*\"], \"workspaces\": []}]}",
                "empty \"workspaces\" list"},
        BadFile{"TypeIsANumber", File({Token("a", "t1", "8")}),
                "each event type must be a string"}),
    [](const ::testing::TestParamInfo<BadFile>& info) {
      return info.param.name;
    });

TEST(BearerTokenTest, ReadsTheBearerSchemeAndNothingElse) {
  const std::string good = "Bearer abc.def";
  EXPECT_EQ(*BearerToken(&good), "abc.def");
  const std::string lower = "bearer  xyz ";
  EXPECT_EQ(*BearerToken(&lower), "xyz");
  for (const std::string bad :
       {"", "Basic abc", "Bearer", "Bearer   ", "abc"}) {
    absl::StatusOr<absl::string_view> token = BearerToken(&bad);
    ASSERT_FALSE(token.ok()) << bad;
    EXPECT_EQ(token.status().code(), absl::StatusCode::kUnauthenticated);
    if (bad.size() > 6) {
      EXPECT_THAT(token.status().message(), ::testing::Not(HasSubstr(bad)));
    }
  }
  absl::StatusOr<absl::string_view> none = BearerToken(nullptr);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(none.status().message(), HasSubstr("authorization: Bearer"));
}

class AuthorizeTest : public ::testing::Test {
 protected:
  AuthorizeTest() {
    crm_.name = "crm";
    crm_.types = {v1::EVENT_TYPE_LEAD_CAPTURED, v1::EVENT_TYPE_FORM_SUBMITTED};
    all_.name = "ops";
    all_.all_types = true;
  }
  SubscriberGrant crm_;
  SubscriberGrant all_;
};

TEST_F(AuthorizeTest, AnEmptyRequestMeansWhatTheTokenMayRead) {
  v1::SubscribeRequest request;
  ASSERT_TRUE(Authorize(crm_, &request).ok());
  EXPECT_THAT(
      request.event_types(),
      ElementsAre(v1::EVENT_TYPE_LEAD_CAPTURED, v1::EVENT_TYPE_FORM_SUBMITTED));
  v1::SubscribeRequest everything;
  ASSERT_TRUE(Authorize(all_, &everything).ok());
  EXPECT_THAT(everything.event_types(), IsEmpty());
}

TEST_F(AuthorizeTest, ATypeOutsideTheTokensSetIsDeniedByName) {
  v1::SubscribeRequest request;
  request.add_event_types(v1::EVENT_TYPE_LEAD_CAPTURED);
  request.add_event_types(v1::EVENT_TYPE_MESSAGE_RECEIVED);
  absl::Status status = Authorize(crm_, &request);
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("\"message_received\""));
  EXPECT_THAT(status.message(), HasSubstr("\"crm\""));
  v1::SubscribeRequest other;
  other.add_event_types(v1::EVENT_TYPE_OTHER);
  EXPECT_EQ(Authorize(crm_, &other).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(Authorize(all_, &other).ok());
  v1::SubscribeRequest subset;
  subset.add_event_types(v1::EVENT_TYPE_FORM_SUBMITTED);
  EXPECT_TRUE(Authorize(crm_, &subset).ok());
  EXPECT_THAT(subset.event_types(), ElementsAre(v1::EVENT_TYPE_FORM_SUBMITTED));
}

TEST_F(AuthorizeTest, AStreamGoesOnOnlyWhileItsTypesStayAllowed) {
  EXPECT_TRUE(StillAllowed(crm_, {v1::EVENT_TYPE_LEAD_CAPTURED}).ok());
  SubscriberGrant narrowed = crm_;
  narrowed.types = {v1::EVENT_TYPE_FORM_SUBMITTED};
  absl::Status status = StillAllowed(
      narrowed, {v1::EVENT_TYPE_LEAD_CAPTURED, v1::EVENT_TYPE_FORM_SUBMITTED});
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(), HasSubstr("\"lead_captured\""));
  // Everything, then narrowed to a list.
  EXPECT_TRUE(StillAllowed(all_, {}).ok());
  EXPECT_EQ(StillAllowed(crm_, {}).code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(AuthorizeTest, ATokenLimitedToWorkspacesReadsOnlyThose) {
  SubscriberGrant acme = all_;
  acme.name = "acme-ops";
  acme.workspaces = {"acme", "acme-eu"};
  v1::SubscribeRequest any;
  ASSERT_TRUE(Authorize(acme, &any).ok());
  EXPECT_THAT(any.workspaces(), ElementsAre("acme", "acme-eu"));
  v1::SubscribeRequest one;
  one.add_workspaces("acme-eu");
  ASSERT_TRUE(Authorize(acme, &one).ok());
  EXPECT_THAT(one.workspaces(), ElementsAre("acme-eu"));
  v1::SubscribeRequest other;
  other.add_workspaces("globex");
  const absl::Status denied = Authorize(acme, &other);
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.message(), HasSubstr("workspace \"globex\""));
  // A stream of every workspace ends when its token is limited to some.
  EXPECT_EQ(StillAllowed(acme, {}, {}).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(StillAllowed(acme, {}, {"acme"}).ok());
  SubscriberGrant narrowed = acme;
  narrowed.workspaces = {"acme"};
  EXPECT_EQ(StillAllowed(narrowed, {}, {"acme", "acme-eu"}).code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(SubscriberTokensTest, ReadsWorkspaces) {
  absl::StatusOr<SubscriberTokens> tokens = SubscriberTokens::Parse(
      "{\"tokens\": [{\"name\": \"a\", \"sha256\": \"" + HexDigest("t") +
      "\", \"event_types\": [\"*\"], \"workspaces\": [\"globex\", "
      "\"acme\", \"acme\"]}]}");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_THAT(tokens->grants()[0].workspaces, ElementsAre("acme", "globex"));
}

TEST(TypeStringTest, IsTheSendersString) {
  EXPECT_EQ(TypeString(v1::EVENT_TYPE_LEAD_CAPTURED), "lead_captured");
  EXPECT_EQ(TypeString(v1::EVENT_TYPE_ORGANISATION_DELETED),
            "organisation_deleted");
  EXPECT_EQ(TypeString(v1::EVENT_TYPE_OTHER), "other");
}

}  // namespace
}  // namespace convocore::auth

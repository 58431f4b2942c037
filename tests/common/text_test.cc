// ValidUtf8: names from the kernel and the wire made safe for protobuf strings, JSON and labels.
#include "faultline/common/text.h"

#include <gtest/gtest.h>

namespace faultline {
namespace {

TEST(ValidUtf8, KeepsValidTextAndReplacesEveryBadByte) {
  EXPECT_EQ(ValidUtf8("gateway"), "gateway");
  EXPECT_EQ(ValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_EQ(ValidUtf8(std::string("a\0b", 3)), std::string("a\0b", 3));  // NUL is valid UTF-8
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(ValidUtf8("front\xFF" "end"), "front" + r + "end");
  EXPECT_EQ(ValidUtf8("\xC0\xAF"), r + r);              // overlong '/'
  EXPECT_EQ(ValidUtf8("\xE0\x80\xAF"), r + r + r);      // overlong, three bytes
  EXPECT_EQ(ValidUtf8("\xED\xA0\x80"), r + r + r);      // a surrogate
  EXPECT_EQ(ValidUtf8("\xF4\x90\x80\x80"), r + r + r + r);  // past U+10FFFF
  EXPECT_EQ(ValidUtf8("ab\xE2\x82"), "ab" + r + r);      // cut short
  EXPECT_EQ(ValidUtf8("\x80x"), r + "x");                // a lone continuation byte
  EXPECT_EQ(ValidUtf8(""), "");
}

}  // namespace
}  // namespace faultline

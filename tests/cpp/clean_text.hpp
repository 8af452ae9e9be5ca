#pragma once
// What the policy tests and the policy fuzzer require of every message and decoded string:
// text that Python can turn into a str (valid UTF-8) and that C code does not cut (no NUL).

#include <boost/locale/utf.hpp>

#include <string_view>

namespace recyclebin::testing {

inline bool is_clean_text(std::string_view text) {
  namespace utf = boost::locale::utf;
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p != end) {
    const utf::code_point c = utf::utf_traits<char>::decode(p, end);
    if (c == 0 || c == utf::illegal || c == utf::incomplete) return false;
  }
  return true;
}

}  // namespace recyclebin::testing

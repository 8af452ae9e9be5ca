#include "recyclebin/policy.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <boost/describe/members.hpp>
#include <boost/locale/utf.hpp>
#include <boost/mp11/algorithm.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <type_traits>

#include "recyclebin/error.hpp"

namespace recyclebin {
namespace detail {
const std::vector<std::pair<std::string_view, std::string_view>>& builtin_policy_texts();
}

namespace {

namespace bd = boost::describe;
namespace utf = boost::locale::utf;

constexpr int kMaxDays = 36'500;  // a hundred years: beyond that a number is a typo
// Mappings and lists inside each other. A policy needs five (tenants.ID.components.KIND is
// four mappings inside the document's); the limit keeps hostile nesting off the stack.
constexpr std::size_t kMaxDepth = 32;
constexpr std::size_t kMaxPolicyBytes = std::size_t{64} << 20;  // yaml-cpp marks are ints
// Every tenant's rules are a copy of the base with the overrides applied, so the base's
// lists and names are copied once per tenant: this bounds the product.
constexpr std::size_t kMaxTenantCopyBytes = std::size_t{64} << 20;
constexpr std::size_t kQuoteLimit = 80;  // bytes of input quoted in a message

template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};
template <class T> struct is_vector : std::false_type {};
template <class T> struct is_vector<std::vector<T>> : std::true_type {};
template <class T> struct is_map : std::false_type {};
template <class K, class V, class C> struct is_map<std::map<K, V, C>> : std::true_type {};

template <class T>
constexpr bool is_described_struct = bd::has_describe_members<T>::value;

void append_escape(std::string& out, const char* format, unsigned value) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, format, value);
  out += buffer;
}

/// `text` made safe to put in a message: valid UTF-8 stays as it is; NUL, control
/// characters and bytes that are not UTF-8 are written as escapes (\x00, \n, \u0085), so a
/// message is always valid UTF-8 and never ends early at a NUL. At most `limit` bytes of
/// `text` are kept, then "...".
std::string escaped(std::string_view text, std::size_t limit = std::string_view::npos) {
  std::string out;
  const char* const begin = text.data();
  const char* const end = begin + text.size();
  const char* p = begin;
  while (p != end) {
    if (static_cast<std::size_t>(p - begin) >= limit) {
      out += "...";
      break;
    }
    const char* const start = p;
    const utf::code_point c = utf::utf_traits<char>::decode(p, end);
    if (c == utf::illegal || c == utf::incomplete) {
      p = start + 1;
      append_escape(out, "\\x%02x", static_cast<unsigned char>(*start));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      append_escape(out, "\\x%02x", c);
    } else if (c >= 0x80 && c <= 0x9f) {
      append_escape(out, "\\u%04x", c);
    } else {
      out.append(start, p);
    }
  }
  return out;
}

/// Input quoted in a message: escaped and cut to a readable length.
std::string quote_input(std::string_view text) { return "'" + escaped(text, kQuoteLimit) + "'"; }

/// What is wrong with `text` as policy text, and where; nullopt when it is NUL-free UTF-8.
struct BadText {
  std::size_t offset;
  std::string problem;
};
std::optional<BadText> find_bad_text(std::string_view text) {
  const char* const begin = text.data();
  const char* const end = begin + text.size();
  const char* p = begin;
  while (p != end) {
    const char* const start = p;
    const utf::code_point c = utf::utf_traits<char>::decode(p, end);
    const auto offset = static_cast<std::size_t>(start - begin);
    if (c == 0) return BadText{offset, "a NUL byte"};
    if (c == utf::illegal || c == utf::incomplete) {
      std::string problem = "a byte that is not UTF-8 (";
      append_escape(problem, "\\x%02x", static_cast<unsigned char>(*start));
      return BadText{offset, problem + ")"};
    }
  }
  return std::nullopt;
}

/// The line and column (yaml-cpp's convention: 0-based, in bytes) of a byte offset.
YAML::Mark mark_of(std::string_view text, std::size_t offset) {
  YAML::Mark mark;
  const std::string_view before = text.substr(0, offset);
  const std::size_t last_newline = before.rfind('\n');
  mark.pos = static_cast<int>(offset);
  mark.line = static_cast<int>(std::count(before.begin(), before.end(), '\n'));
  mark.column = static_cast<int>(last_newline == std::string_view::npos ? offset : offset - last_newline - 1);
  return mark;
}

/// Where errors point: "source:line:column: message". Every message leaves here escaped.
class Decoder {
 public:
  explicit Decoder(std::string prefix) : prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& message) const {
    std::string where = prefix_;
    if (!mark.is_null()) {
      where += std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) + ": ";
    }
    throw Error(ErrorCode::policy_error, escaped(where + message));
  }

 private:
  std::string prefix_;
};

std::string position(const YAML::Mark& mark) {
  return "line " + std::to_string(mark.line + 1) + ", column " + std::to_string(mark.column + 1);
}

/// One YAML node as the policy decoder sees it. Mapping keys are text (a policy has no other
/// keys), looked up through `index`, so decoding is linear in the size of the document.
struct Node {
  enum class Kind { null, scalar, sequence, mapping };
  Kind kind = Kind::null;
  YAML::Mark mark;
  bool quoted = false;       // a quoted (or block) scalar: a string, never a number or boolean
  std::string text;          // a scalar's value
  std::vector<Node> items;   // a sequence's items, or a mapping's values in document order
  std::vector<std::pair<std::string, YAML::Mark>> keys;  // a mapping's keys, as `items`
  std::map<std::string, std::size_t, std::less<>> index;  // a mapping's key -> position

  const Node* find(std::string_view key) const {
    const auto it = index.find(key);
    return it == index.end() ? nullptr : &items[it->second];
  }
};

const char* kind_name(Node::Kind kind) {
  switch (kind) {
    case Node::Kind::null: return "empty";
    case Node::Kind::scalar: return "a value";
    case Node::Kind::sequence: return "a list";
    case Node::Kind::mapping: return "a mapping";
  }
  return "?";
}

/// Builds the Node tree from yaml-cpp's parser events, refusing on the way what a policy
/// never contains: a second document, tags, anchors and aliases, keys that are not text,
/// duplicate keys, values that decode to NUL or to bytes that are not UTF-8, unterminated
/// quotes (which yaml-cpp closes silently at the end of the input) and deep nesting.
class TreeBuilder final : public YAML::EventHandler {
 public:
  /// `text` is what the parser reads, after `bom` bytes of byte order mark it skips.
  TreeBuilder(const Decoder& decoder, std::string_view text, std::size_t bom)
      : decoder_(decoder), text_(text), bom_(bom) {}

  bool has_root() const { return has_root_; }
  Node take_root() { return std::move(root_); }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1) {
      decoder_.fail(mark, "a second YAML document; a policy is one document (remove the '---' "
                          "line and what follows, or put it in a file of its own)");
    }
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    check_anchor(mark, anchor);
    if (expecting_key()) decoder_.fail(mark, "an empty key; a key is a word or a quoted string");
    add(mark, Node::Kind::null);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    decoder_.fail(mark, "an alias (*name); a policy has no anchors or aliases: write the value out");
  }

  void OnAnchor(const YAML::Mark& mark, const std::string&) override { check_anchor(mark, 1); }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    check_properties(mark, tag, anchor);
    check_decoded(mark, value);
    const bool is_quoted = tag == "!";
    if (is_quoted) check_terminated(mark);
    if (expecting_key()) {
      add_key(mark, value);
      return;
    }
    Node& node = add(mark, Node::Kind::scalar);
    node.text = value;
    node.quoted = is_quoted;
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, tag, anchor, Node::Kind::sequence);
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, tag, anchor, Node::Kind::mapping);
  }
  void OnMapEnd() override { close(); }

 private:
  struct Open {
    Node* node;
    bool has_key = false;  // a mapping's key was read; its value comes next
    std::string key;
    YAML::Mark key_mark;
    bool is_key;  // a mapping or list written as a key: refused when it ends
  };

  bool expecting_key() const {
    return !open_.empty() && open_.back().node->kind == Node::Kind::mapping && !open_.back().has_key;
  }

  void check_anchor(const YAML::Mark& mark, YAML::anchor_t anchor) const {
    if (anchor != YAML::NullAnchor) {
      decoder_.fail(mark, "an anchor (&name); a policy has no anchors or aliases: write the value out");
    }
  }

  void check_properties(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor) const {
    check_anchor(mark, anchor);
    // yaml-cpp spells "no tag" as "?" (plain) or "!" (quoted, or a collection written so).
    if (tag == "?" || tag == "!") return;
    constexpr std::string_view core = "tag:yaml.org,2002:";
    const std::string shown = tag.rfind(core, 0) == 0 ? "!!" + tag.substr(core.size()) : tag;
    decoder_.fail(mark, "unknown tag " + quote_input(shown) + "; a policy uses no tags: write the value "
                        "without it (quote it to make it a string)");
  }

  void check_decoded(const YAML::Mark& mark, const std::string& value) const {
    if (const auto bad = find_bad_text(value)) {
      if (value[bad->offset] == '\0') {
        decoder_.fail(mark, "a value contains a NUL character (\\0); policy text must not contain NUL");
      }
      decoder_.fail(mark, "a value decodes to " + bad->problem +
                              "; the escapes \\N and \\_ do this: write \\u0085 or \\u00a0 instead");
    }
  }

  /// yaml-cpp ends a quoted scalar silently at the end of the input: find its closing quote.
  void check_terminated(const YAML::Mark& mark) const {
    if (mark.pos < 0) return;
    const std::size_t at = static_cast<std::size_t>(mark.pos) + bom_;
    if (at >= text_.size()) return;
    const char quote = text_[at];
    if (quote != '"' && quote != '\'') return;  // a block scalar (| or >)
    for (std::size_t i = at + 1; i < text_.size(); ++i) {
      if (quote == '"' && text_[i] == '\\') {
        ++i;  // an escape: the next character is not the end
      } else if (text_[i] == quote) {
        if (quote == '\'' && i + 1 < text_.size() && text_[i + 1] == '\'') {
          ++i;  // '' is a quote inside a single-quoted string
        } else {
          return;
        }
      }
    }
    decoder_.fail(mark, std::string("a quoted string that is never closed; end it with ") + quote);
  }

  void add_key(const YAML::Mark& mark, const std::string& key) {
    Open& parent = open_.back();
    if (const auto it = parent.node->index.find(key); it != parent.node->index.end()) {
      decoder_.fail(mark, "duplicate key " + quote_input(key) + " (first at " +
                              position(parent.node->keys[it->second].second) +
                              "); a key may appear once in a mapping");
    }
    parent.has_key = true;
    parent.key = key;
    parent.key_mark = mark;
  }

  void open(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor, Node::Kind kind) {
    check_properties(mark, tag, anchor);
    if (open_.size() >= kMaxDepth) {
      decoder_.fail(mark, "nested deeper than " + std::to_string(kMaxDepth) +
                              " levels of mappings and lists; a policy needs at most 5 "
                              "(tenants.ID.components.KIND.on_delete)");
    }
    if (expecting_key()) {
      // Refused when it ends, so that an unclosed '[' (which yaml-cpp reads as the start of
      // a key) is reported as what it is: nesting, or a missing ']'.
      Node& key = key_nodes_.emplace_back();
      key.kind = kind;
      key.mark = mark;
      open_.push_back(Open{&key, false, {}, {}, true});
      return;
    }
    open_.push_back(Open{&add(mark, kind), false, {}, {}, false});
  }

  void close() {
    if (open_.back().is_key) {
      const Node& key = *open_.back().node;
      decoder_.fail(key.mark, std::string("a key that is ") + kind_name(key.kind) +
                                  "; a key is a word or a quoted string");
    }
    open_.pop_back();
  }

  /// A new node where the parser is: the document itself, a list item or a mapping value.
  /// The returned reference stays valid while the node is open: only the innermost open
  /// container grows.
  Node& add(const YAML::Mark& mark, Node::Kind kind) {
    Node* node = &root_;
    if (open_.empty()) {
      has_root_ = true;
    } else {
      Open& parent = open_.back();
      parent.node->items.emplace_back();
      node = &parent.node->items.back();
      if (parent.node->kind == Node::Kind::mapping) {
        parent.node->index.emplace(parent.key, parent.node->items.size() - 1);
        parent.node->keys.emplace_back(std::move(parent.key), parent.key_mark);
        parent.has_key = false;
      }
    }
    node->kind = kind;
    node->mark = mark;
    return *node;
  }

  const Decoder& decoder_;
  std::string_view text_;
  std::size_t bom_;
  int documents_ = 0;
  bool has_root_ = false;
  Node root_;
  std::vector<Open> open_;
  std::deque<Node> key_nodes_;  // keys that are not text, until they end and are refused
};

/// The one document of `text` (already checked to be NUL-free UTF-8), or a PolicyError.
Node parse_yaml(const Decoder& decoder, std::string_view text) {
  const std::size_t bom = text.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
  std::istringstream in{std::string(text)};
  YAML::Parser parser(in);
  TreeBuilder builder(decoder, text, bom);
  try {
    if (parser.HandleNextDocument(builder)) {
      parser.HandleNextDocument(builder);  // a second document is refused as it starts
    }
  } catch (const YAML::DeepRecursion& e) {
    decoder.fail(e.mark, "nested too deeply for the YAML parser; a policy needs at most 5 levels");
  } catch (const YAML::Exception& e) {
    decoder.fail(e.mark, "not valid YAML: " + e.msg);
  }
  if (!builder.has_root()) {
    decoder.fail(YAML::Mark(), "the policy is empty; a policy is a mapping with at least 'version' and 'name'");
  }
  return builder.take_root();
}

/// The integers a policy key allows, for messages.
std::string allowed_integers(std::string_view path) {
  if (path == "version") return "the only supported version is 1";
  if (path == "orphans.purge_after_days") return "allowed: null (never) or 0.." + std::to_string(kMaxDays);
  if (path == "auto_delete.after_days") return "allowed: null (never) or 1.." + std::to_string(kMaxDays) + " days";
  return "allowed: 1.." + std::to_string(kMaxDays) + " days";
}

/// Where each decoded value was written: its path ("retention.min_days") -> its position.
using Marks = std::map<std::string, YAML::Mark, std::less<>>;

template <class T>
bool has_member(std::string_view name) {
  bool found = false;
  boost::mp11::mp_for_each<bd::describe_members<T, bd::mod_public>>(
      [&](auto d) { found = found || name == described_name(d.name); });
  return found;
}

template <class T>
std::string member_names() {
  std::string names;
  boost::mp11::mp_for_each<bd::describe_members<T, bd::mod_public>>([&](auto d) {
    if (!names.empty()) names += ", ";
    names += described_name(d.name);
  });
  return names;
}

/// The sections of Rules a tenant may override: all but version and name.
std::string overridable_sections() {
  std::string names;
  boost::mp11::mp_for_each<bd::describe_members<Rules, bd::mod_public>>([&](auto d) {
    const std::string_view name = described_name(d.name);
    if (name == "version" || name == "name") return;
    if (!names.empty()) names += ", ";
    names += name;
  });
  return names;
}

/// Decodes Nodes into described types, over what `out` already holds: mappings merge into
/// it, everything else replaces. That is how a tenant's overrides apply over the base.
/// Messages name values as `label` + path ("tenants.contoso." + "retention.min_days");
/// positions are recorded under the path alone.
class Reader {
 public:
  Reader(const Decoder& decoder, std::string label, Marks& marks)
      : decoder_(decoder), label_(std::move(label)), marks_(marks) {}

  template <class T>
  void decode(const Node& node, const std::string& path, T& out) const {
    marks_.insert_or_assign(path, node.mark);
    if constexpr (std::is_same_v<T, bool>) {
      const std::string& text = scalar(node, path, "true or false");
      if (node.quoted) {
        fail(node, "'" + name(path) + "' must be true or false, not the string " + quote_input(text) +
                       " (remove the quotes)");
      }
      if (text == "true" || text == "True") out = true;
      else if (text == "false" || text == "False") out = false;
      else fail(node, "'" + name(path) + "' must be true or false, not " + quote_input(text));
    } else if constexpr (std::is_same_v<T, int>) {
      const std::string& text = scalar(node, path, "an integer");
      if (node.quoted) {
        fail(node, "'" + name(path) + "' must be an integer, not the string " + quote_input(text) +
                       " (remove the quotes)");
      }
      int value = 0;
      const char* const end = text.data() + text.size();
      const auto [stop, ec] = std::from_chars(text.data(), end, value);
      if (ec == std::errc::result_out_of_range && stop == end) {
        fail(node, "'" + name(path) + "' is " + quote_input(text) + ", out of range; " + allowed_integers(path));
      }
      if (ec != std::errc() || stop != end) {
        fail(node, "'" + name(path) + "' must be an integer, not " + quote_input(text));
      }
      out = value;
    } else if constexpr (std::is_same_v<T, std::string>) {
      out = scalar(node, path, "a string");
      if (out.empty()) fail(node, "'" + name(path) + "' must not be empty");
    } else if constexpr (std::is_enum_v<T>) {
      const std::string& text = scalar(node, path, "one of: " + enum_names<T>());
      const auto value = enum_from_string<T>(text);
      if (!value) fail(node, "'" + name(path) + "' is " + quote_input(text) + "; allowed: " + enum_names<T>());
      out = *value;
    } else if constexpr (is_optional<T>::value) {
      if (node.kind == Node::Kind::null) {
        out.reset();
      } else {
        typename T::value_type value{};
        decode(node, path, value);
        out = std::move(value);
      }
    } else if constexpr (is_vector<T>::value) {
      if (node.kind != Node::Kind::sequence) fail(node, "'" + name(path) + "' must be a list");
      out.clear();
      for (std::size_t i = 0; i < node.items.size(); ++i) {
        typename T::value_type value{};
        decode(node.items[i], path + "[" + std::to_string(i) + "]", value);
        out.push_back(std::move(value));
      }
    } else if constexpr (is_map<T>::value) {
      if (node.kind != Node::Kind::mapping) fail(node, "'" + name(path) + "' must be a mapping");
      using Key = typename T::key_type;
      for (std::size_t i = 0; i < node.items.size(); ++i) {
        const auto& [key_text, key_mark] = node.keys[i];
        Key key{};
        if constexpr (std::is_enum_v<Key>) {
          const auto value = enum_from_string<Key>(key_text);
          if (!value) {
            decoder_.fail(key_mark, "unknown key " + quote_input(key_text) + " in '" + name(path) +
                                        "'; allowed: " + enum_names<Key>());
          }
          key = *value;
        } else {
          if (key_text.empty()) decoder_.fail(key_mark, "an empty key in '" + name(path) + "'");
          key = key_text;
        }
        decode(node.items[i], path + "." + key_text, out[key]);
      }
    } else if constexpr (is_described_struct<T>) {
      if (node.kind == Node::Kind::null) return;  // an empty section changes nothing
      if (node.kind != Node::Kind::mapping) fail(node, "'" + name(path) + "' must be a mapping");
      for (std::size_t i = 0; i < node.keys.size(); ++i) {
        const auto& [key_text, key_mark] = node.keys[i];
        if (!has_member<T>(key_text)) {
          decoder_.fail(key_mark, "unknown key " + quote_input(key_text) + " in '" + name(path) +
                                      "'; allowed: " + member_names<T>());
        }
      }
      decode_members(node, path, out);
    } else {
      static_assert(sizeof(T) == 0, "no YAML decoding for this type");
    }
  }

  /// The members of T that `node` (a mapping whose keys were checked) gives.
  template <class T>
  void decode_members(const Node& node, const std::string& path, T& out) const {
    boost::mp11::mp_for_each<bd::describe_members<T, bd::mod_public>>([&](auto d) {
      const std::string key(described_name(d.name));
      if (const Node* child = node.find(key)) {
        decode(*child, path.empty() ? key : path + "." + key, out.*d.pointer);
      }
    });
  }

 private:
  [[noreturn]] void fail(const Node& node, const std::string& message) const {
    decoder_.fail(node.mark, message);
  }

  std::string name(const std::string& path) const { return label_ + path; }

  const std::string& scalar(const Node& node, const std::string& path, const std::string& expected) const {
    if (node.kind != Node::Kind::scalar) {
      fail(node, "'" + name(path) + "' must be " + expected + ", not " + kind_name(node.kind));
    }
    return node.text;
  }

  const Decoder& decoder_;
  std::string label_;
  Marks& marks_;
};

/// Where a message about the value at a path points: the value, or its deepest ancestor
/// that was written; a tenant's own overrides first, then the base they merge over.
class Positions {
 public:
  Positions(const Marks& own, const Marks* base, const YAML::Mark& root)
      : own_(own), base_(base), root_(root) {}

  YAML::Mark at(std::initializer_list<std::string_view> path) const {
    std::vector<std::string> prefixes;
    std::string joined;
    for (const std::string_view part : path) {
      if (!joined.empty()) joined += '.';
      joined += part;
      prefixes.push_back(joined);
    }
    for (auto it = prefixes.rbegin(); it != prefixes.rend(); ++it) {
      if (const auto found = own_.find(*it); found != own_.end()) return found->second;
      if (base_ != nullptr) {
        if (const auto found = base_->find(*it); found != base_->end()) return found->second;
      }
    }
    return root_;
  }

 private:
  const Marks& own_;
  const Marks* base_;
  YAML::Mark root_;
};

void validate(const Decoder& decoder, const Rules& rules, const Positions& positions, bool base,
              const std::string& tenant = {}) {
  // Errors about a tenant's merged rules say which tenant they are about.
  const std::string where =
      tenant.empty() ? std::string() : " (tenant " + quote_input(tenant) + ", merged over the base)";
  auto fail = [&](std::initializer_list<std::string_view> path, const std::string& message) {
    decoder.fail(positions.at(path), message + where);
  };
  if (base && rules.version != 1) {
    fail({"version"}, "'version' is " + std::to_string(rules.version) + "; " + allowed_integers("version"));
  }
  const RetentionRules& r = rules.retention;
  auto check_days = [&](int value, const char* key) {
    if (value < 1 || value > kMaxDays) {
      fail({"retention", key}, std::string("'retention.") + key + "' is " + std::to_string(value) +
                                   "; " + allowed_integers(std::string("retention.") + key));
    }
  };
  check_days(r.min_days, "min_days");
  check_days(r.max_days, "max_days");
  check_days(r.default_days, "default_days");
  if (r.min_days > r.max_days) {
    fail({"retention", "min_days"}, "'retention.min_days' (" + std::to_string(r.min_days) +
                                        ") is greater than 'retention.max_days' (" +
                                        std::to_string(r.max_days) + ")");
  }
  if (r.per_workspace && (r.default_days < r.min_days || r.default_days > r.max_days)) {
    fail({"retention", "default_days"},
         "'retention.default_days' is " + std::to_string(r.default_days) +
             "; allowed: min_days..max_days (" + std::to_string(r.min_days) + ".." +
             std::to_string(r.max_days) + ")");
  }
  if (rules.orphans.purge_after_days &&
      (*rules.orphans.purge_after_days < 0 || *rules.orphans.purge_after_days > kMaxDays)) {
    fail({"orphans", "purge_after_days"},
         "'orphans.purge_after_days' is " + std::to_string(*rules.orphans.purge_after_days) + "; " +
             allowed_integers("orphans.purge_after_days"));
  }
  if (rules.auto_delete.after_days &&
      (*rules.auto_delete.after_days < 1 || *rules.auto_delete.after_days > kMaxDays)) {
    fail({"auto_delete", "after_days"},
         "'auto_delete.after_days' is " + std::to_string(*rules.auto_delete.after_days) + "; " +
             allowed_integers("auto_delete.after_days"));
  }
  if (rules.purge_protection.default_ && !rules.soft_delete.enabled) {
    fail({"purge_protection", "default"},
         "'purge_protection.default' is true, but 'soft_delete.enabled' is false: every delete is "
         "permanent, and purge protection allows only soft deletes; turn one of them off");
  }
  for (const auto& [kind, rule] : rules.components) {
    if (rule.on_recover == OnRecover::reattach && rule.on_delete != OnDelete::destroy) {
      fail({"components", kind, "on_recover"},
           "'components." + kind + ".on_recover' is reattach, but only destroy kinds can be "
           "reattached (on_delete is " + enum_to_string(rule.on_delete) + ")");
    }
  }
  for (const auto& [action, roles] : rules.permissions) {
    const std::string name = enum_to_string(action);
    if (roles.empty()) {
      fail({"permissions", name},
           "'permissions." + name + "' lists no role; list at least one, or remove the action: " +
               (action == Action::create
                    ? "an unlisted create is allowed to any principal"
                    : "an unlisted action is allowed only to the workspace's owner (and the platform)"));
    }
  }
}

/// Bytes that copying `rules` for a tenant costs: its strings, and a node's worth per entry.
std::size_t copy_cost(const Rules& rules) {
  constexpr std::size_t kEntry = 64;
  std::size_t cost = sizeof(Rules) + rules.name.size();
  for (const auto& list : {&rules.preconditions.blockers, &rules.preconditions.warnings}) {
    for (const std::string& item : *list) cost += kEntry + item.size();
  }
  for (const auto& [kind, rule] : rules.components) cost += kEntry + kind.size();
  for (const auto& [action, roles] : rules.permissions) {
    cost += kEntry;
    for (const std::string& role : roles) cost += kEntry + role.size();
  }
  return cost;
}

template <class T>
void encode(YAML::Emitter& out, const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    // yaml-cpp writes a control character such as \r raw in a plain scalar, where a reader
    // takes it for a line break; double quotes escape it.
    const bool control = std::any_of(value.begin(), value.end(),
                                     [](char c) { return static_cast<unsigned char>(c) < 0x20; });
    if (control) out << YAML::DoubleQuoted;
    out << value;
  } else if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, int>) {
    out << value;
  } else if constexpr (std::is_enum_v<T>) {
    out << enum_to_string(value);
  } else if constexpr (is_optional<T>::value) {
    if (value) encode(out, *value);
    else out << YAML::Null;
  } else if constexpr (is_vector<T>::value) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& item : value) encode(out, item);
    out << YAML::EndSeq;
  } else if constexpr (is_map<T>::value) {
    out << YAML::BeginMap;
    for (const auto& [key, item] : value) {
      out << YAML::Key;
      encode(out, key);
      out << YAML::Value;
      encode(out, item);
    }
    out << YAML::EndMap;
  } else {
    out << YAML::BeginMap;
    boost::mp11::mp_for_each<bd::describe_members<T, bd::mod_public>>([&](auto d) {
      out << YAML::Key << std::string(described_name(d.name)) << YAML::Value;
      encode(out, value.*d.pointer);
    });
    out << YAML::EndMap;
  }
}

}  // namespace

ComponentRule Rules::component_rule(std::string_view kind) const {
  if (auto it = components.find(std::string(kind)); it != components.end()) return it->second;
  if (auto it = components.find("default"); it != components.end()) return it->second;
  return ComponentRule{};
}

Policy Policy::from_yaml(std::string_view text, std::string_view source) {
  const Decoder decoder(source.empty() ? std::string() : std::string(source) + ":");
  if (text.size() > kMaxPolicyBytes) {
    decoder.fail(YAML::Mark::null_mark(), "the policy is " + std::to_string(text.size()) +
                                              " bytes; the limit is " +
                                              std::to_string(kMaxPolicyBytes >> 20) + " MiB");
  }
  if (const auto bad = find_bad_text(text)) {
    decoder.fail(mark_of(text, bad->offset),
                 "the policy contains " + bad->problem + "; a policy is UTF-8 text without NUL bytes");
  }
  const Node root = parse_yaml(decoder, text);
  if (root.kind != Node::Kind::mapping) {
    decoder.fail(root.mark, std::string("a policy must be a mapping with at least 'version' and 'name', not ") +
                                kind_name(root.kind));
  }

  // The document is Rules plus 'tenants'.
  for (const auto& [key, mark] : root.keys) {
    if (key != "tenants" && !has_member<Rules>(key)) {
      decoder.fail(mark, "unknown key " + quote_input(key) + "; allowed: " + member_names<Rules>() + ", tenants");
    }
  }
  for (const char* required : {"version", "name"}) {
    if (root.find(required) == nullptr) {
      decoder.fail(root.mark, std::string("missing required key '") + required + "'");
    }
  }
  Marks base_marks;
  Rules base;
  Reader(decoder, "", base_marks).decode_members(root, "", base);
  validate(decoder, base, Positions(base_marks, nullptr, root.mark), true);

  std::map<std::string, Rules, std::less<>> tenants;
  const Node* tenants_node = root.find("tenants");
  if (tenants_node != nullptr && tenants_node->kind != Node::Kind::null) {
    if (tenants_node->kind != Node::Kind::mapping) {
      decoder.fail(tenants_node->mark, "'tenants' must be a mapping of subscription id to overrides");
    }
    const std::size_t cost = copy_cost(base);
    if (tenants_node->items.size() * cost > kMaxTenantCopyBytes) {
      decoder.fail(root.keys[root.index.find("tenants")->second].second,
                   "too many tenants for the size of the base: each tenant's rules are a copy of the "
                   "base's " + std::to_string(cost) + " bytes of names, lists and components, and " +
                   std::to_string(tenants_node->items.size()) + " tenants pass the limit of " +
                   std::to_string(kMaxTenantCopyBytes >> 20) + " MiB; shorten the base's lists, or "
                   "split the policy");
    }
    for (std::size_t i = 0; i < tenants_node->items.size(); ++i) {
      const auto& [tenant, tenant_mark] = tenants_node->keys[i];
      const Node& override_node = tenants_node->items[i];
      const std::string key = "tenants." + tenant;
      if (tenant.empty()) decoder.fail(tenant_mark, "an empty subscription id in 'tenants'");
      if (override_node.kind != Node::Kind::mapping) {
        decoder.fail(override_node.mark, "'" + key + "' must be a mapping of sections to override");
      }
      for (const auto& [section, section_mark] : override_node.keys) {
        if (section == "version" || section == "name" || !has_member<Rules>(section)) {
          decoder.fail(section_mark,
                       "unknown key " + quote_input(section) + " in '" + key +
                           "'; a tenant may override: " + overridable_sections());
        }
      }
      Marks marks;
      Rules rules = base;  // the overrides apply over a copy of the base
      Reader(decoder, key + ".", marks).decode_members(override_node, "", rules);
      validate(decoder, rules, Positions(marks, &base_marks, override_node.mark), false, tenant);
      tenants.emplace(tenant, std::move(rules));
    }
  }

  Policy policy;
  policy.base_ = std::make_shared<const Rules>(std::move(base));
  policy.tenants_ = std::make_shared<const std::map<std::string, Rules, std::less<>>>(std::move(tenants));
  policy.text_ = std::make_shared<const std::string>(text);
  return policy;
}

Policy Policy::load(const std::string& path) {
  auto refuse = [&](const std::string& message) {
    throw Error(ErrorCode::policy_error, escaped(path) + ": " + message);
  };
  if (path.find('\0') != std::string::npos) {
    refuse("a policy path must not contain a NUL byte; give the path of a policy YAML file");
  }
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::directory) {
    refuse("is a directory, not a policy file; give the path of a policy YAML file");
  }
  if (!ec && status.type() != std::filesystem::file_type::regular &&
      status.type() != std::filesystem::file_type::fifo) {
    refuse("is not a regular file (a device or a socket); give the path of a policy YAML file");
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) refuse("cannot read the policy file (missing or not readable)");
  std::string text;
  char buffer[1 << 16];
  while (file.read(buffer, sizeof buffer) || file.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(file.gcount()));
    if (text.size() > kMaxPolicyBytes) {
      refuse("the policy file is larger than " + std::to_string(kMaxPolicyBytes >> 20) + " MiB");
    }
  }
  if (file.bad()) refuse("cannot read the policy file (a read error)");
  return from_yaml(text, path);
}

std::vector<std::string> Policy::builtin_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : detail::builtin_policy_texts()) names.emplace_back(name);
  return names;
}

Policy Policy::builtin(std::string_view name) {
  for (const auto& [builtin_name, text] : detail::builtin_policy_texts()) {
    if (builtin_name == name) return from_yaml(text, "policies/" + std::string(name) + ".yaml");
  }
  std::string known;
  for (const auto& known_name : builtin_names()) known += (known.empty() ? "" : ", ") + known_name;
  throw Error(ErrorCode::policy_error,
              "unknown built-in policy " + quote_input(name) + "; built-in policies: " + known);
}

const Rules& Policy::rules_for(std::string_view subscription_id) const {
  if (auto it = tenants_->find(subscription_id); it != tenants_->end()) return it->second;
  return *base_;
}

std::vector<std::string> Policy::tenants() const {
  std::vector<std::string> names;
  for (const auto& [name, rules] : *tenants_) names.push_back(name);
  return names;
}

std::string Policy::to_yaml(const Rules& rules) {
  YAML::Emitter out;
  encode(out, rules);
  return out.c_str();
}

}  // namespace recyclebin

#include "recyclebin/policy.hpp"

#include <yaml-cpp/yaml.h>

#include <boost/describe/members.hpp>
#include <boost/mp11/algorithm.hpp>

#include <charconv>
#include <fstream>
#include <sstream>
#include <type_traits>

#include "recyclebin/error.hpp"

namespace recyclebin {
namespace detail {
const std::vector<std::pair<std::string_view, std::string_view>>& builtin_policy_texts();
}

namespace {

namespace bd = boost::describe;

constexpr int kMaxDays = 36'500;  // a hundred years: beyond that a number is a typo

template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};
template <class T> struct is_vector : std::false_type {};
template <class T> struct is_vector<std::vector<T>> : std::true_type {};
template <class T> struct is_map : std::false_type {};
template <class K, class V, class C> struct is_map<std::map<K, V, C>> : std::true_type {};

template <class T>
constexpr bool is_described_struct = bd::has_describe_members<T>::value;

/// Decodes YAML nodes into described types; every error names source:line:column and the key.
class Decoder {
 public:
  explicit Decoder(std::string prefix) : prefix_(std::move(prefix)) {}

  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& message) const {
    std::string where = prefix_;
    if (!mark.is_null()) {
      where += std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) + ": ";
    }
    throw Error(ErrorCode::policy_error, where + message);
  }

  template <class T>
  void decode(const YAML::Node& node, const std::string& key, T& out) const {
    if constexpr (std::is_same_v<T, bool>) {
      const std::string text = scalar(node, key, "true or false");
      if (text == "true" || text == "True") out = true;
      else if (text == "false" || text == "False") out = false;
      else fail(node.Mark(), "'" + key + "' must be true or false, not '" + text + "'");
    } else if constexpr (std::is_same_v<T, int>) {
      const std::string text = scalar(node, key, "an integer");
      int value = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec != std::errc() || end != text.data() + text.size()) {
        fail(node.Mark(), "'" + key + "' must be an integer, not '" + text + "'");
      }
      out = value;
    } else if constexpr (std::is_same_v<T, std::string>) {
      out = scalar(node, key, "a string");
      if (out.empty()) fail(node.Mark(), "'" + key + "' must not be empty");
    } else if constexpr (std::is_enum_v<T>) {
      const std::string text = scalar(node, key, "one of: " + enum_names<T>());
      const auto value = enum_from_string<T>(text);
      if (!value) {
        fail(node.Mark(), "'" + key + "' is '" + text + "'; allowed: " + enum_names<T>());
      }
      out = *value;
    } else if constexpr (is_optional<T>::value) {
      if (node.IsNull()) {
        out.reset();
      } else {
        typename T::value_type value{};
        decode(node, key, value);
        out = std::move(value);
      }
    } else if constexpr (is_vector<T>::value) {
      if (!node.IsSequence()) fail(node.Mark(), "'" + key + "' must be a list");
      out.clear();
      for (std::size_t i = 0; i < node.size(); ++i) {
        typename T::value_type value{};
        decode(node[i], key + "[" + std::to_string(i) + "]", value);
        out.push_back(std::move(value));
      }
    } else if constexpr (is_map<T>::value) {
      if (!node.IsMap()) fail(node.Mark(), "'" + key + "' must be a mapping");
      out.clear();
      for (auto it = node.begin(); it != node.end(); ++it) {
        typename T::key_type map_key{};
        if constexpr (std::is_enum_v<typename T::key_type>) {
          const auto value = enum_from_string<typename T::key_type>(it->first.Scalar());
          if (!value) {
            fail(it->first.Mark(), "unknown key '" + it->first.Scalar() + "' in '" + key +
                                       "'; allowed: " + enum_names<typename T::key_type>());
          }
          map_key = *value;
        } else {
          decode(it->first, key + " key", map_key);
        }
        const std::string child = key + "." + it->first.Scalar();
        decode(it->second, child, out[map_key]);
      }
    } else if constexpr (is_described_struct<T>) {
      decode_struct(node, key, out);
    } else {
      static_assert(sizeof(T) == 0, "no YAML decoding for this type");
    }
  }

  /// Rejects keys that T does not describe, pointing at the key.
  template <class T>
  void check_keys(const YAML::Node& node, const std::string& key) const {
    for (auto it = node.begin(); it != node.end(); ++it) {
      const std::string name = it->first.Scalar();
      if (!has_member<T>(name)) {
        fail(it->first.Mark(), "unknown key '" + name + "'" +
                                   (key.empty() ? std::string() : " in '" + key + "'") +
                                   "; allowed: " + member_names<T>());
      }
    }
  }

  template <class T>
  static bool has_member(const std::string& name) {
    bool found = false;
    boost::mp11::mp_for_each<bd::describe_members<T, bd::mod_public>>(
        [&](auto d) { found = found || name == d.name; });
    return found;
  }

  template <class T>
  static std::string member_names() {
    std::string names;
    boost::mp11::mp_for_each<bd::describe_members<T, bd::mod_public>>([&](auto d) {
      if (!names.empty()) names += ", ";
      names += d.name;
    });
    return names;
  }

 private:
  std::string scalar(const YAML::Node& node, const std::string& key, const std::string& expected) const {
    if (!node.IsScalar()) fail(node.Mark(), "'" + key + "' must be " + expected);
    return node.Scalar();
  }

  template <class T>
  void decode_struct(const YAML::Node& node, const std::string& key, T& out) const {
    if (node.IsNull()) return;  // an empty section keeps its defaults
    if (!node.IsMap()) fail(node.Mark(), "'" + key + "' must be a mapping");
    check_keys<T>(node, key);
    boost::mp11::mp_for_each<bd::describe_members<T, bd::mod_public>>([&](auto d) {
      const YAML::Node child = node[d.name];
      if (child) decode(child, key.empty() ? std::string(d.name) : key + "." + d.name, out.*d.pointer);
    });
  }

  std::string prefix_;
};

/// The node at `path` below root, or the deepest existing ancestor: where an error points.
YAML::Mark mark_at(const YAML::Node& root, std::initializer_list<const char*> path) {
  YAML::Node node = root;
  YAML::Mark mark = root.Mark();
  for (const char* key : path) {
    if (!node.IsMap()) break;
    const YAML::Node child = node[key];
    if (!child) break;
    mark = child.Mark();
    node = child;
  }
  return mark;
}

void validate(const Decoder& decoder, const Rules& rules, const YAML::Node& root, bool base,
              const std::string& tenant = {}) {
  // Errors about a tenant's merged rules say which tenant they are about.
  const std::string where = tenant.empty() ? std::string() : " (tenant '" + tenant + "', merged over the base)";
  auto fail = [&](const YAML::Mark& mark, const std::string& message) { decoder.fail(mark, message + where); };
  if (base && rules.version != 1) {
    fail(mark_at(root, {"version"}),
                 "'version' is " + std::to_string(rules.version) + "; the only supported version is 1");
  }
  const RetentionRules& r = rules.retention;
  auto check_days = [&](int value, const char* key) {
    if (value < 1 || value > kMaxDays) {
      fail(mark_at(root, {"retention", key}),
                   std::string("'retention.") + key + "' is " + std::to_string(value) +
                       "; allowed: 1.." + std::to_string(kMaxDays) + " days");
    }
  };
  check_days(r.min_days, "min_days");
  check_days(r.max_days, "max_days");
  check_days(r.default_days, "default_days");
  if (r.min_days > r.max_days) {
    fail(mark_at(root, {"retention", "min_days"}),
                 "'retention.min_days' (" + std::to_string(r.min_days) +
                     ") is greater than 'retention.max_days' (" + std::to_string(r.max_days) + ")");
  }
  if (r.per_workspace && (r.default_days < r.min_days || r.default_days > r.max_days)) {
    fail(mark_at(root, {"retention", "default_days"}),
                 "'retention.default_days' is " + std::to_string(r.default_days) +
                     "; allowed: min_days..max_days (" + std::to_string(r.min_days) + ".." +
                     std::to_string(r.max_days) + ")");
  }
  if (rules.orphans.purge_after_days &&
      (*rules.orphans.purge_after_days < 0 || *rules.orphans.purge_after_days > kMaxDays)) {
    fail(mark_at(root, {"orphans", "purge_after_days"}),
                 "'orphans.purge_after_days' is " + std::to_string(*rules.orphans.purge_after_days) +
                     "; allowed: null (never) or 0.." + std::to_string(kMaxDays));
  }
  for (const auto& [kind, rule] : rules.components) {
    if (rule.on_recover == OnRecover::reattach && rule.on_delete != OnDelete::destroy) {
      fail(mark_at(root, {"components", kind.c_str(), "on_recover"}),
                   "'components." + kind + ".on_recover' is reattach, but only destroy kinds can be "
                   "reattached (on_delete is " + enum_to_string(rule.on_delete) + ")");
    }
  }
  for (const auto& [action, roles] : rules.permissions) {
    const std::string name = enum_to_string(action);
    if (roles.empty()) {
      fail(mark_at(root, {"permissions", name.c_str()}),
                   "'permissions." + name + "' lists no role; list at least one, or remove the "
                   "action to leave it open to every principal");
    }
  }
}

/// Base mapping with `override_node` merged in: mappings merge, everything else replaces.
/// Children are shared with the originals, so marks keep pointing into the source text.
YAML::Node merge(const YAML::Node& base, const YAML::Node& override_node) {
  if (!base.IsMap() || !override_node.IsMap()) return override_node;
  YAML::Node merged(YAML::NodeType::Map);
  for (auto it = base.begin(); it != base.end(); ++it) merged[it->first.Scalar()] = it->second;
  for (auto it = override_node.begin(); it != override_node.end(); ++it) {
    const std::string key = it->first.Scalar();
    const YAML::Node existing = base[key];
    merged[key] = existing ? merge(existing, it->second) : it->second;
  }
  return merged;
}

template <class T>
void encode(YAML::Emitter& out, const T& value) {
  if constexpr (std::is_same_v<T, bool> || std::is_same_v<T, int> || std::is_same_v<T, std::string>) {
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
      out << YAML::Key << d.name << YAML::Value;
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
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    decoder.fail(e.mark, "not valid YAML: " + e.msg);
  }
  if (!root.IsMap()) {
    decoder.fail(root.Mark(), "a policy must be a mapping with at least 'version' and 'name'");
  }

  // The document is Rules plus 'tenants'; decode the rest generically.
  YAML::Node base_node(YAML::NodeType::Map);
  YAML::Node tenants_node;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string key = it->first.Scalar();
    if (key == "tenants") {
      tenants_node = it->second;
    } else if (!Decoder::has_member<Rules>(key)) {
      decoder.fail(it->first.Mark(), "unknown key '" + key + "'; allowed: " +
                                          Decoder::member_names<Rules>() + ", tenants");
    } else {
      base_node[key] = it->second;
    }
  }
  for (const char* required : {"version", "name"}) {
    if (!root[required]) {
      decoder.fail(root.Mark(), std::string("missing required key '") + required + "'");
    }
  }
  Rules base;
  decoder.decode(base_node, "", base);
  validate(decoder, base, root, true);

  std::map<std::string, Rules, std::less<>> tenants;
  if (tenants_node && !tenants_node.IsNull()) {
    if (!tenants_node.IsMap()) {
      decoder.fail(tenants_node.Mark(), "'tenants' must be a mapping of subscription id to overrides");
    }
    for (auto it = tenants_node.begin(); it != tenants_node.end(); ++it) {
      const std::string tenant = it->first.Scalar();
      const YAML::Node override_node = it->second;
      const std::string key = "tenants." + tenant;
      if (!override_node.IsMap()) {
        decoder.fail(override_node.Mark(), "'" + key + "' must be a mapping of sections to override");
      }
      for (auto field = override_node.begin(); field != override_node.end(); ++field) {
        const std::string section = field->first.Scalar();
        if (section == "version" || section == "name" || !Decoder::has_member<Rules>(section)) {
          decoder.fail(field->first.Mark(),
                       "unknown key '" + section + "' in '" + key +
                           "'; a tenant may override: retention, soft_delete, permanent_delete, "
                           "name_reservation, preconditions, orphans, components, permissions");
        }
      }
      Rules probe;  // types, enums and unknown keys, checked where the override wrote them
      decoder.decode(override_node, key, probe);
      const YAML::Node merged = merge(base_node, override_node);
      Rules rules;
      decoder.decode(merged, "", rules);
      validate(decoder, rules, merged, false, tenant);
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
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    throw Error(ErrorCode::policy_error,
                path + ": cannot read the policy file (missing or not readable)");
  }
  std::ostringstream text;
  text << file.rdbuf();
  return from_yaml(text.str(), path);
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
              "unknown built-in policy '" + std::string(name) + "'; built-in policies: " + known);
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

// recyclebin::Policy for Python. Parsing, validation and every message stay in the core;
// this file only converts. rules() walks the Boost.Describe descriptions of Rules, so a new
// policy key shows up in Python without a change here.

#include <boost/describe/class.hpp>
#include <boost/describe/enum.hpp>
#include <boost/describe/members.hpp>
#include <boost/mp11/algorithm.hpp>
#include <pybind11/stl.h>

#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "bindings.hpp"
#include "recyclebin/policy.hpp"

namespace recyclebin::bindings {
namespace {

template <class T>
py::object rules_value(const T& value);
template <class T>
py::object rules_container(const std::optional<T>& value);
template <class T>
py::object rules_container(const std::vector<T>& values);
template <class K, class V, class C>
py::object rules_container(const std::map<K, V, C>& values);

template <class T>
py::object rules_value(const T& value) {
  if constexpr (std::is_same_v<T, bool> || std::is_arithmetic_v<T> ||
                std::is_same_v<T, std::string>) {
    return py::cast(value);
  } else if constexpr (boost::describe::has_describe_enumerators<T>::value) {
    return py::str(enum_to_string(value));  // as policies spell it: "delete", not "delete_"
  } else if constexpr (boost::describe::has_describe_members<T>::value) {
    py::dict out;
    boost::mp11::mp_for_each<boost::describe::describe_members<T, boost::describe::mod_public>>(
        [&](auto member) { out[py::str(std::string(described_name(member.name)))] = rules_value(value.*member.pointer); });
    return out;
  } else {
    return rules_container(value);
  }
}

template <class T>
py::object rules_container(const std::optional<T>& value) {
  return value ? rules_value(*value) : py::none();
}

template <class T>
py::object rules_container(const std::vector<T>& values) {
  py::list out;
  for (const T& item : values) out.append(rules_value(item));
  return out;
}

template <class K, class V, class C>
py::object rules_container(const std::map<K, V, C>& values) {
  py::dict out;
  for (const auto& [key, item] : values) out[rules_value(key)] = rules_value(item);
  return out;
}

const Rules& rules_of(const Policy& policy, const std::optional<std::string>& subscription_id) {
  return subscription_id ? policy.rules_for(*subscription_id) : policy.base();
}

}  // namespace

void bind_policy(py::module_& m) {
  py::class_<Policy>(m, "Policy",
                     "A parsed, validated, immutable policy; share it freely between engines "
                     "and threads.")
      .def_static(
          "from_yaml",
          [](const std::string& text, const std::string& source) {
            return without_gil([&] { return Policy::from_yaml(text, source); });
          },
          py::arg("text"), py::arg("source") = std::string())
      .def_static(
          "load",
          [](const Text<"path">& path) {
            return without_gil([&] { return Policy::load(path.value); });
          },
          py::arg("path"))
      .def_static(
          "builtin",
          [](const Text<"name">& name) {
            return without_gil([&] { return Policy::builtin(name.value); });
          },
          py::arg("name"))
      .def_static("builtin_names", &Policy::builtin_names)
      .def_property_readonly("name", &Policy::name)
      .def_property_readonly("source_text", &Policy::source_text)
      .def("tenants", &Policy::tenants)
      .def(
          "to_yaml",
          [](const Policy& policy, const std::optional<Text<"subscription_id">>& subscription_id) {
            return Policy::to_yaml(rules_of(policy, optional_text(subscription_id)));
          },
          py::arg("subscription_id") = py::none(),
          "The effective rules (the base, or a tenant's merged rules) as YAML.")
      .def(
          "rules",
          [](const Policy& policy, const std::optional<Text<"subscription_id">>& subscription_id) {
            return rules_value(rules_of(policy, optional_text(subscription_id)));
          },
          py::arg("subscription_id") = py::none(),
          "The effective rules as a dict of plain values, keyed as in the policy file.");
}

}  // namespace recyclebin::bindings

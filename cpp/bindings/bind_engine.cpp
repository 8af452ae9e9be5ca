// recyclebin::Engine and the values that cross its edge.
//
// GIL: every engine call converts its arguments to C++ values first, then runs with the
// GIL released (without_gil), touching no Python object, so Python threads run the engine
// in parallel and a close() waiting for calls in flight cannot deadlock with them. The
// one way back into Python is the facts provider, which takes the GIL itself.
//
// Answers are plain data: each engine answer is a tuple of Python values (str, int, bool,
// aware UTC datetime, None, lists, and nested such tuples) in the order of its field names
// in FIELDS, which this module publishes (FIELDS["workspace"] is a live workspace,
// components as (kind, ref, standalone) tuples). The module knows nothing of the package
// that wraps it: the package builds its own objects from these tuples and checks its
// classes against FIELDS. Nothing here is process-global: every conversion works on the
// values of one call.

#include <pybind11/stl.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "recyclebin/engine.hpp"

namespace recyclebin::bindings {
namespace {

using OptionalString = std::optional<std::string>;

// --- building Python values -------------------------------------------------------------------

py::object steal(PyObject* object) {
  if (object == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(object);
}

/// True when `text` is all ASCII, checked eight bytes at a time (ids and names are tens of bytes).
bool is_ascii(const std::string& text) {
  std::uint64_t bits = 0;
  std::size_t i = 0;
  for (; i + sizeof bits <= text.size(); i += sizeof bits) {
    std::uint64_t word = 0;
    std::memcpy(&word, text.data() + i, sizeof word);
    bits |= word;
  }
  for (; i < text.size(); ++i) bits |= static_cast<unsigned char>(text[i]);
  return (bits & 0x8080808080808080ULL) == 0;
}

/// A str of the UTF-8 `text`. The engine's strings are mostly ASCII (ids, names, kinds), which
/// are copied into the str as they are instead of going through the decoder.
py::object py_str(const std::string& text) {
  const auto size = static_cast<Py_ssize_t>(text.size());
  if (!is_ascii(text)) return steal(PyUnicode_DecodeUTF8(text.data(), size, nullptr));
  py::object str = steal(PyUnicode_New(size, 127));
  std::memcpy(PyUnicode_1BYTE_DATA(str.ptr()), text.data(), text.size());
  return str;
}

py::object integer(std::int64_t value) { return steal(PyLong_FromLongLong(value)); }

py::object boolean(bool value) {
  return py::reinterpret_borrow<py::object>(value ? Py_True : Py_False);
}

py::object optional_str(const std::optional<std::string>& text) {
  return text ? py_str(*text) : py::none();
}

py::object optional_datetime(const std::optional<Timestamp>& t) {
  return t ? to_datetime(*t) : py::none();
}

py::object str_list(const std::vector<std::string>& items) {
  py::object list = steal(PyList_New(static_cast<Py_ssize_t>(items.size())));
  for (std::size_t i = 0; i < items.size(); ++i) {
    PyList_SET_ITEM(list.ptr(), static_cast<Py_ssize_t>(i), py_str(items[i]).release().ptr());
  }
  return list;
}

/// The strs of one answer's repeated values (the subscription and group of consecutive
/// items, component kinds): equal text, one str object, so a page of items does not
/// allocate (and later free) the same string a hundred times. Lives for one answer.
class RepeatedStrs {
 public:
  /// `text` as a str; the same object as for the previous call with equal `text` at `slot`.
  py::object same_as_last(std::size_t slot, const std::string& text) {
    Last& last = last_[slot];
    if (!last.value || last.text != text) {
      last.value = py_str(text);
      last.text = text;
    }
    return last.value;
  }

  /// `text` as a str, shared among the few distinct values seen (kinds are a handful).
  py::object kind(const std::string& text) {
    for (const auto& [known, value] : kinds_) {
      if (known == text) return value;
    }
    py::object value = py_str(text);
    if (kinds_.size() < kMaxKinds) kinds_.emplace_back(text, value);
    return value;
  }

  py::object kinds(const std::vector<std::string>& items) {
    py::object list = steal(PyList_New(static_cast<Py_ssize_t>(items.size())));
    for (std::size_t i = 0; i < items.size(); ++i) {
      PyList_SET_ITEM(list.ptr(), static_cast<Py_ssize_t>(i), kind(items[i]).release().ptr());
    }
    return list;
  }

 private:
  struct Last {
    std::string text;
    py::object value;
  };
  static constexpr std::size_t kMaxKinds = 16;
  std::array<Last, 2> last_;
  std::vector<std::pair<std::string, py::object>> kinds_;
};

template <class T, class Convert>
py::object list_of(const std::vector<T>& items, Convert&& convert) {
  py::object list = steal(PyList_New(static_cast<Py_ssize_t>(items.size())));
  for (std::size_t i = 0; i < items.size(); ++i) {
    PyList_SET_ITEM(list.ptr(), static_cast<Py_ssize_t>(i), convert(items[i]).release().ptr());
  }
  return list;
}

// --- the answers' shapes ----------------------------------------------------------------------

/// The field names of one kind of answer, in the order of its tuple.
template <std::size_t N>
struct Shape {
  const char* key;  // its name in FIELDS
  std::array<const char*, N> fields;
};

constexpr Shape<9> kCleanupTask{"cleanup_task",
                                {"id", "kind", "ref", "workspace_id", "created_at", "attempts",
                                 "last_error", "leased_by", "leased_until"}};
constexpr Shape<9> kDeleteResult{"delete_result",
                                 {"permanent", "deleted_at", "purge_at", "retained", "destroyed",
                                  "preserved", "cleanup", "warnings", "dry_run"}};
constexpr Shape<10> kDeletedWorkspace{"deleted_workspace",
                                      {"id", "name", "subscription_id", "resource_group",
                                       "deleted_at", "purge_at", "retention_days", "retained",
                                       "held", "as_of"}};
constexpr Shape<4> kRecoverResult{"recover_result",
                                  {"workspace", "restored", "reattached", "must_recreate"}};
constexpr Shape<5> kPurgeReport{"purge_report",
                                {"purged", "cleanup", "dry_run", "auto_deleted",
                                 "auto_delete_refused"}};
constexpr Shape<3> kDeletableWorkspace{"deletable_workspace", {"kind", "workspace_id", "since"}};
constexpr Shape<9> kAuditRecord{"audit_record",
                                {"seq", "at", "action", "subscription_id", "resource_group",
                                 "name", "outcome", "workspace_id", "principal_id"}};
constexpr Shape<5> kHold{"hold", {"id", "workspace_id", "reason", "placed_by", "placed_at"}};
constexpr Shape<5> kLien{"lien", {"id", "workspace_id", "origin", "reason", "created_at"}};
constexpr Shape<11> kWorkspace{"workspace",
                               {"id", "subscription_id", "resource_group", "name",
                                "retention_days", "cmk_encrypted", "state", "created_at",
                                "components", "purge_protection", "auto_delete_at"}};

/// A tuple of `values`.
template <class... Values>
py::object tuple_of(Values&&... values) {
  py::object tuple = steal(PyTuple_New(static_cast<Py_ssize_t>(sizeof...(Values))));
  Py_ssize_t i = 0;
  ((PyTuple_SET_ITEM(tuple.ptr(), i++, py::object(std::forward<Values>(values)).release().ptr())), ...);
  return tuple;
}

/// The record of one answer of `shape`: a tuple of `values`, one per field (checked when
/// compiling), in the shape's order.
template <std::size_t N, class... Values>
py::object record(const Shape<N>& /*shape*/, Values&&... values) {
  static_assert(sizeof...(Values) == N, "one value per field of the answer's shape");
  return tuple_of(std::forward<Values>(values)...);
}

template <std::size_t N>
py::tuple field_names(const Shape<N>& shape) {
  py::tuple names(N);
  // Interned, as the names in code are: setting an attribute by one finds its slot at once.
  for (std::size_t i = 0; i < N; ++i) names[i] = steal(PyUnicode_InternFromString(shape.fields[i]));
  return names;
}

/// FIELDS: each answer's field names, by the answer's name.
py::dict answer_fields() {
  py::dict fields;
  auto add = [&](const auto& shape) { fields[shape.key] = field_names(shape); };
  add(kCleanupTask);
  add(kDeleteResult);
  add(kDeletedWorkspace);
  add(kRecoverResult);
  add(kPurgeReport);
  add(kDeletableWorkspace);
  add(kAuditRecord);
  add(kHold);
  add(kLien);
  add(kWorkspace);
  return fields;
}

// --- the answers ------------------------------------------------------------------------------
// value(item) makes the record of one item (overloads chosen by the item's type);
// records_of the list of records of a list of items.

py::object value(const CleanupTask& t);
py::object value(const DeleteResult& r);
py::object value(const PurgeReport& r);
py::object value(const Hold& h);
py::object value(const Lien& l);
py::object value(const DeletableWorkspace& d);
py::object value(const AuditRecord& r);

template <class T>
py::object records_of(const std::vector<T>& items) {
  return list_of(items, [&](const T& item) { return value(item); });
}

py::object value(const CleanupTask& t) {
  return record(kCleanupTask, integer(t.id), py_str(t.kind), py_str(t.ref), py_str(t.workspace_id),
                              to_datetime(t.created_at), integer(t.attempts),
                              optional_str(t.last_error), optional_str(t.leased_by),
                              optional_datetime(t.leased_until));
}

py::object value(const DeleteResult& r) {
  return record(kDeleteResult, boolean(r.permanent), to_datetime(r.deleted_at),
                               optional_datetime(r.purge_at), str_list(r.retained),
                               str_list(r.destroyed), str_list(r.preserved),
                               records_of(r.cleanup), str_list(r.warnings),
                               boolean(r.dry_run));
}

/// One item of a listing of the bin, read at `as_of`; `strs` shares the listing's repeated strs.
py::object deleted_workspace_value(const DeletedWorkspace& d,
                                   const py::object& as_of, RepeatedStrs& strs) {
  return record(kDeletedWorkspace, py_str(d.id), py_str(d.name),
                                   strs.same_as_last(0, d.subscription_id),
                                   strs.same_as_last(1, d.resource_group), to_datetime(d.deleted_at),
                                   to_datetime(d.purge_at), integer(d.retention_days),
                                   strs.kinds(d.retained), boolean(d.held), as_of);
}

py::object value(const PurgeReport& r) {
  auto names = [](const PurgedWorkspace& p) {
    return tuple_of(py_str(p.subscription_id), py_str(p.resource_group), py_str(p.name));
  };
  auto refused = [](const RefusedAutoDelete& p) {
    return tuple_of(py_str(p.subscription_id), py_str(p.resource_group), py_str(p.name), py_str(p.code));
  };
  return record(kPurgeReport, list_of(r.purged, names), records_of(r.cleanup),
                              boolean(r.dry_run), list_of(r.auto_deleted, names),
                              list_of(r.auto_delete_refused, refused));
}

py::object value(const Hold& h) {
  return record(kHold, py_str(h.id), py_str(h.workspace_id), py_str(h.reason),
                      optional_str(h.placed_by), to_datetime(h.placed_at));
}

py::object value(const Lien& l) {
  return record(kLien, py_str(l.id), py_str(l.workspace_id), py_str(l.origin), py_str(l.reason),
                      to_datetime(l.created_at));
}

py::object value(const DeletableWorkspace& d) {
  return record(kDeletableWorkspace, py_str(enum_to_string(d.kind)), py_str(d.workspace_id),
                                     to_datetime(d.since));
}

py::object value(const AuditRecord& r) {
  return record(kAuditRecord, integer(r.seq), to_datetime(r.at), py_str(r.action),
                              py_str(r.subscription_id), py_str(r.resource_group), py_str(r.name),
                              py_str(r.outcome), py_str(r.workspace_id),
                              // None: the platform (stored as the empty string).
                              r.principal_id.empty() ? py::none() : py_str(r.principal_id));
}

/// Untracks `tuple` from the cyclic GC: it holds only values that cannot form a cycle (str,
/// int, bool, datetime, None, or such tuples), as CPython's own _PyTuple_MaybeUntrack would
/// find at the first collection. Long-lived snapshots then cost the collector nothing.
py::object untracked(py::object tuple) {
  PyObject_GC_UnTrack(tuple.ptr());
  return tuple;
}

/// A live workspace: a tuple in kWorkspace's order (the facade keeps it whole as the
/// workspace's state), components as (kind, ref, standalone) tuples.
py::object workspace_value(const Workspace& w) {
  py::object components = steal(PyTuple_New(static_cast<Py_ssize_t>(w.components.size())));
  for (std::size_t i = 0; i < w.components.size(); ++i) {
    const Component& c = w.components[i];
    py::object component = untracked(tuple_of(py_str(c.kind), py_str(c.ref), boolean(c.standalone)));
    PyTuple_SET_ITEM(components.ptr(), static_cast<Py_ssize_t>(i), component.release().ptr());
  }
  static_assert(kWorkspace.fields.size() == 11, "one value per field of kWorkspace");
  return untracked(tuple_of(py_str(w.id), py_str(w.subscription_id), py_str(w.resource_group),
                            py_str(w.name), integer(w.retention_days), boolean(w.cmk_encrypted),
                            py_str(enum_to_string(w.state)), to_datetime(w.created_at),
                            untracked(std::move(components)), boolean(w.purge_protection),
                            optional_datetime(w.auto_delete_at)));
}

py::object value(const RecoverResult& r) {
  return record(kRecoverResult, workspace_value(r.workspace), str_list(r.restored),
                                str_list(r.reattached), str_list(r.must_recreate));
}

/// A recyclebin::Engine as this module exposes it.
struct BoundEngine {
  std::unique_ptr<Engine> engine;
};

// --- reading Python values --------------------------------------------------------------------

/// Components as (kind, ref, standalone) tuples (a list or tuple of them), as the engine's.
std::vector<Component> components_from(const py::handle& items) {
  if (!PyList_Check(items.ptr()) && !PyTuple_Check(items.ptr())) {
    throw py::type_error("components must be a list of (kind, ref, standalone) tuples");
  }
  py::object sequence = py::reinterpret_borrow<py::object>(items);
  const Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence.ptr());
  std::vector<Component> components;
  components.reserve(static_cast<std::size_t>(count));
  for (Py_ssize_t i = 0; i < count; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(sequence.ptr(), i);  // borrowed
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(item, 0)) || !PyUnicode_Check(PyTuple_GET_ITEM(item, 1)) ||
        !PyBool_Check(PyTuple_GET_ITEM(item, 2))) {
      throw py::type_error("each component must be a (kind: str, ref: str, standalone: bool) tuple");
    }
    Component component;
    component.kind = text_from(PyTuple_GET_ITEM(item, 0), "Component.kind");
    component.ref = text_from(PyTuple_GET_ITEM(item, 1), "Component.ref");
    component.standalone = PyTuple_GET_ITEM(item, 2) == Py_True;
    components.push_back(std::move(component));
  }
  return components;
}

// Frees Python objects from any thread: the engine may drop its copy of the facts
// provider on a thread that does not hold the GIL.
struct GilDeleter {
  template <class T>
  void operator()(T* owner) const {
    if (!Py_IsInitialized()) return;  // interpreter gone: leaking beats crashing
    py::gil_scoped_acquire gil;
    delete owner;
  }
};

/// A Python callable as the engine's FactsProvider, called with the workspace as a tuple
/// (FIELDS["workspace"]). Called by the engine on the thread that asked for the delete, with
/// the GIL released; acquires it for the call. A Python exception becomes a
/// std::runtime_error carrying no Python object, which the engine treats as "cannot verify".
class PythonFactsProvider {
 public:
  explicit PythonFactsProvider(py::object function)
      : function_(new py::object(std::move(function)), GilDeleter{}) {}

  Facts operator()(const Workspace& workspace) const {
    py::gil_scoped_acquire gil;
    try {
      return to_facts((*function_)(workspace_value(workspace)));
    } catch (py::error_already_set& error) {
      throw std::runtime_error(std::string("facts provider raised ") + error.what());
    }
  }

 private:
  static Facts to_facts(const py::object& answer) {
    if (!py::isinstance<py::dict>(answer)) {
      throw std::runtime_error("facts provider must return a dict[str, int], not " +
                               py::str(py::type::handle_of(answer).attr("__qualname__"))
                                   .cast<std::string>());
    }
    Facts facts;
    for (auto [key, value] : py::reinterpret_borrow<py::dict>(answer)) {
      if (!py::isinstance<py::str>(key) || !py::isinstance<py::int_>(value)) {
        throw std::runtime_error("facts provider must return a dict[str, int]; got " +
                                 py::repr(key).cast<std::string>() + ": " +
                                 py::repr(value).cast<std::string>());
      }
      facts.emplace(key.cast<std::string>(), value.cast<std::int64_t>());
    }
    return facts;
  }

  std::shared_ptr<py::object> function_;
};

DeleteOptions delete_options(bool delete_dependent_resources, bool permanently_delete,
                             OptionalString confirm_name, bool dry_run) {
  DeleteOptions options;
  options.dry_run = dry_run;
  options.delete_dependent_resources = delete_dependent_resources;
  options.permanently_delete = permanently_delete;
  options.confirm_name = std::move(confirm_name);
  return options;
}

// --- objects of records -----------------------------------------------------------------------
// A generic service for the package, which makes its own objects of the records above: new
// instances of a class it passes, with the attributes it names set to one record's values (as
// object.__new__(cls) followed by object.__setattr__ per name: no __init__ runs, the class's own
// __setattr__ is not called), one call for a whole list. Where the class keeps its instances'
// attributes in inline, key-sharing values (CPython 3.11+), no dict is made per object. It
// knows no class and keeps none: any class whose instances have a __dict__ will do.

/// A new instance of `cls` whose attribute names[i] is row[i]; `empty` is an empty tuple.
PyObject* instance_of(PyTypeObject* cls, PyObject* empty, PyObject* names, PyObject* row) {
  const Py_ssize_t count = PyTuple_GET_SIZE(names);
  if (!PyTuple_CheckExact(row) || PyTuple_GET_SIZE(row) != count) {
    PyErr_Format(PyExc_TypeError, "a record must be a tuple of %zd values (one per name), not %.200s%s", count,
                 Py_TYPE(row)->tp_name, PyTuple_CheckExact(row) ? " of another length" : "");
    return nullptr;
  }
  PyObject* made = PyBaseObject_Type.tp_new(cls, empty, nullptr);
  for (Py_ssize_t i = 0; made != nullptr && i < count; ++i) {
    if (PyObject_GenericSetAttr(made, PyTuple_GET_ITEM(names, i), PyTuple_GET_ITEM(row, i)) < 0) Py_CLEAR(made);
  }
  return made;
}

/// The class and names arguments: a class that object.__new__ makes (it has no __new__ of
/// its own, as object.__new__(cls) requires) and whose instances have a __dict__, and a tuple
/// of strs.
PyTypeObject* class_argument(PyObject* const* args, Py_ssize_t nargs, const char* usage) {
  if (nargs != 3 || !PyType_Check(args[0]) || !PyTuple_CheckExact(args[1])) {
    PyErr_SetString(PyExc_TypeError, usage);
    return nullptr;
  }
  auto* cls = reinterpret_cast<PyTypeObject*>(args[0]);
  const bool has_dict = cls->tp_dictoffset != 0 || (cls->tp_flags & Py_TPFLAGS_MANAGED_DICT) != 0;
  if (cls->tp_new != PyBaseObject_Type.tp_new || !has_dict) {
    PyErr_Format(PyExc_TypeError,
                 "%.200s: instance() makes only classes that object.__new__ makes and whose "
                 "instances have a __dict__", cls->tp_name);
    return nullptr;
  }
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args[1]); ++i) {
    if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(args[1], i))) {
      PyErr_Format(PyExc_TypeError, "names must be strs, not %.200s", Py_TYPE(PyTuple_GET_ITEM(args[1], i))->tp_name);
      return nullptr;
    }
  }
  return cls;
}

PyObject* instance(PyObject* /*module*/, PyObject* const* args, Py_ssize_t nargs) {
  PyTypeObject* cls = class_argument(args, nargs, "instance(cls, names, record) takes a class, a tuple of "
                                                  "strs and a tuple");
  if (cls == nullptr) return nullptr;
  PyObject* empty = PyTuple_New(0);
  if (empty == nullptr) return nullptr;
  PyObject* made = instance_of(cls, empty, args[1], args[2]);
  Py_DECREF(empty);
  return made;
}

PyObject* instances(PyObject* /*module*/, PyObject* const* args, Py_ssize_t nargs) {
  PyTypeObject* cls = class_argument(args, nargs, "instances(cls, names, records) takes a class, a tuple of "
                                                  "strs and a list of tuples");
  if (cls == nullptr) return nullptr;
  if (!PyList_Check(args[2])) {
    PyErr_Format(PyExc_TypeError, "records must be a list of tuples, not %.200s", Py_TYPE(args[2])->tp_name);
    return nullptr;
  }
  const Py_ssize_t count = PyList_GET_SIZE(args[2]);
  PyObject* empty = PyTuple_New(0);
  PyObject* made = empty == nullptr ? nullptr : PyList_New(count);
  for (Py_ssize_t i = 0; made != nullptr && i < count; ++i) {
    PyObject* item = instance_of(cls, empty, args[1], PyList_GET_ITEM(args[2], i));
    if (item == nullptr) Py_CLEAR(made);
    else PyList_SET_ITEM(made, i, item);
  }
  Py_XDECREF(empty);
  return made;
}

const PyMethodDef kObjectsOfRecords[] = {
    {"instance", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&instance)), METH_FASTCALL,
     "instance(cls, names, record): a new cls whose attribute names[i] is record[i] (object.__new__(cls), "
     "then object.__setattr__ per name; no __init__ runs)."},
    {"instances", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&instances)), METH_FASTCALL,
     "instances(cls, names, records): [instance(cls, names, record) for record in records], for a list of "
     "tuples."},
};

void bind_values(py::module_& m) {
  py::class_<Principal>(m, "Principal")
      .def(py::init([](Text<"Principal.id"> id, const std::vector<Text<"a role">>& roles) {
             std::vector<std::string> names;
             names.reserve(roles.size());
             for (const auto& role : roles) names.push_back(role.value);
             return Principal{std::move(id.value), std::move(names)};
           }),
           py::arg("id"), py::arg("roles") = std::vector<std::string>{})
      .def_readonly("id", &Principal::id)
      .def_readonly("roles", &Principal::roles);

  m.attr("FIELDS") = answer_fields();
  for (const PyMethodDef& method : kObjectsOfRecords) {
    // PyCFunction_New keeps a pointer to its PyMethodDef: these live as long as the program.
    py::object function = steal(PyCFunction_NewEx(const_cast<PyMethodDef*>(&method), nullptr, m.attr("__name__").ptr()));
    m.attr(method.ml_name) = function;
  }
}

}  // namespace

void bind_engine(py::module_& m) {
  bind_values(m);

  using P = const MaybePrincipal&;
  py::class_<BoundEngine>(m, "Engine",
                          "The only door to the recycle bin. Thread-safe; calls release the GIL.")
      .def_static(
          "open",
          [](const Text<"location">& location, const Policy& policy,
             const std::shared_ptr<ManualClock>& clock) {
            std::shared_ptr<const Clock> engine_clock = clock;
            Policy engine_policy = policy;
            std::unique_ptr<Engine> engine = without_gil(
                [&] { return Engine::open(location.value, engine_policy, engine_clock); });
            return std::make_unique<BoundEngine>(BoundEngine{std::move(engine)});
          },
          py::arg("location"), py::arg("policy"), py::arg("clock") = py::none())
      .def("close", [](BoundEngine& bound) { without_gil([&] { bound.engine->close(); }); })
      .def_property_readonly(
          "closed", [](const BoundEngine& bound) { return without_gil([&] { return bound.engine->closed(); }); })
      .def_property_readonly("policy", [](const BoundEngine& bound) { return bound.engine->policy(); })
      .def("now", [](const BoundEngine& bound) { return to_datetime(bound.engine->clock().now()); })
      .def(
          "set_facts_provider",
          [](BoundEngine& bound, const py::object& function) {
            Engine& e = *bound.engine;
            FactsProvider provider;
            if (!function.is_none()) {
              if (!PyCallable_Check(function.ptr())) {
                throw py::type_error("the facts provider must be callable or None");
              }
              provider = PythonFactsProvider(function);
            }
            without_gil([&] {
              // The core accepts a provider after close(); API.md says every later call
              // raises EngineClosed, so the binding checks (the race with a concurrent
              // close() is harmless: the provider is then simply never asked).
              if (e.closed()) {
                throw Error(ErrorCode::engine_closed,
                            "the engine is closed; open a new one with Engine.open");
              }
              e.set_facts_provider(std::move(provider));
            });
          },
          py::arg("provider"))
      .def(
          "create",
          [](BoundEngine& bound, Text<"subscription_id"> subscription_id,
             Text<"resource_group"> resource_group, Text<"name"> name,
             std::optional<int> retention_days, bool cmk_encrypted,
             const py::handle& components, MaybePrincipal principal, std::optional<bool> purge_protection,
             const Text<"if_deleted">& if_deleted, const py::handle& auto_delete_at) {
            Engine& e = *bound.engine;
            CreateRequest request{std::move(subscription_id.value), std::move(resource_group.value),
                                  std::move(name.value), retention_days, cmk_encrypted,
                                  components_from(components)};
            request.purge_protection = purge_protection;
            const auto mode = enum_from_string<IfDeleted>(if_deleted.value);
            if (!mode) {
              throw Error(ErrorCode::invalid_argument, "if_deleted is '" + if_deleted.value +
                                                           "'; allowed: " + enum_names<IfDeleted>());
            }
            request.if_deleted = *mode;
            if (!auto_delete_at.is_none()) request.auto_delete_at = from_datetime(auto_delete_at, "auto_delete_at");
            return workspace_value(without_gil([&] { return e.create(request, principal); }));
          },
          py::arg("subscription_id"), py::arg("resource_group"),
          py::arg("name"), py::arg("retention_days") = py::none(), py::arg("cmk_encrypted") = false,
          py::arg("components") = py::tuple(), py::arg("principal") = py::none(),
          py::arg("purge_protection") = py::none(), py::arg("if_deleted") = "fail",
          py::arg("auto_delete_at") = py::none())
      .def(
          "get",
          [](BoundEngine& bound, const Text<"subscription_id">& subscription_id,
             const Text<"resource_group">& resource_group, const Text<"name">& name, P principal) {
            Engine& e = *bound.engine;
            return workspace_value(without_gil([&] { return e.get(subscription_id, resource_group, name, principal); }));
          },
          py::arg("subscription_id"), py::arg("resource_group"),
          py::arg("name"), py::arg("principal") = py::none())
      .def(
          "get_by_id",
          [](BoundEngine& bound, const Text<"workspace_id">& workspace_id, P principal) {
            Engine& e = *bound.engine;
            return workspace_value(without_gil([&] { return e.get_by_id(workspace_id, principal); }));
          },
          py::arg("workspace_id"), py::arg("principal") = py::none())
      .def(
          "stop",
          [](BoundEngine& bound, const Text<"workspace_id">& workspace_id, P principal) {
            Engine& e = *bound.engine;
            return workspace_value(without_gil([&] { return e.stop(workspace_id, principal); }));
          },
          py::arg("workspace_id"), py::arg("principal") = py::none())
      .def(
          "start",
          [](BoundEngine& bound, const Text<"workspace_id">& workspace_id, P principal) {
            Engine& e = *bound.engine;
            return workspace_value(without_gil([&] { return e.start(workspace_id, principal); }));
          },
          py::arg("workspace_id"), py::arg("principal") = py::none())
      .def(
          "grant",
          [](BoundEngine& bound, const Text<"workspace_id">& workspace_id, const Text<"member_id">& member_id,
             const Text<"role">& role, P principal) {
            Engine& e = *bound.engine;
            without_gil([&] { e.grant(workspace_id, member_id, role, principal); });
          },
          py::arg("workspace_id"), py::arg("member_id"), py::arg("role"),
          py::arg("principal") = py::none())
      .def(
          "revoke",
          [](BoundEngine& bound, const Text<"workspace_id">& workspace_id, const Text<"member_id">& member_id, P principal) {
            Engine& e = *bound.engine;
            without_gil([&] { e.revoke(workspace_id, member_id, principal); });
          },
          py::arg("workspace_id"), py::arg("member_id"), py::arg("principal") = py::none())
      .def(
          "remove",
          [](BoundEngine& bound, const Text<"workspace_id">& workspace_id, bool delete_dependent_resources,
             bool permanently_delete, const std::optional<Text<"confirm_name">>& confirm_name,
             P principal, bool dry_run) {
            Engine& e = *bound.engine;
            const DeleteOptions options = delete_options(
                delete_dependent_resources, permanently_delete, optional_text(confirm_name), dry_run);
            return value(without_gil([&] { return e.remove(workspace_id, options, principal); }));
          },
          py::arg("workspace_id"), py::arg("delete_dependent_resources") = false,
          py::arg("permanently_delete") = false, py::arg("confirm_name") = py::none(),
          py::arg("principal") = py::none(), py::arg("dry_run") = false)
      .def(
          "remove_many",
          [](BoundEngine& bound, const std::vector<Text<"a workspace id">>& workspace_ids,
             bool delete_dependent_resources, bool permanently_delete,
             const std::optional<Text<"confirm_name">>& confirm_name, P principal, bool dry_run) {
            Engine& e = *bound.engine;
            const DeleteOptions options = delete_options(
                delete_dependent_resources, permanently_delete, optional_text(confirm_name), dry_run);
            std::vector<std::string> ids;
            ids.reserve(workspace_ids.size());
            for (const auto& id : workspace_ids) ids.push_back(id.value);
            return records_of(without_gil([&] { return e.remove_many(ids, options, principal); }));
          },
          py::arg("workspace_ids"), py::arg("delete_dependent_resources") = false,
          py::arg("permanently_delete") = false, py::arg("confirm_name") = py::none(),
          py::arg("principal") = py::none(), py::arg("dry_run") = false)
      .def(
          "list_deleted",
          // (items, next_cursor); each item's as_of is the engine's time just before the read.
          [](BoundEngine& bound, const Text<"subscription_id">& subscription_id,
             const std::optional<Text<"resource_group">>& resource_group,
             std::optional<std::size_t> limit, const std::optional<Text<"cursor">>& cursor,
             P principal, const py::handle& purge_before) {
            Engine& e = *bound.engine;
            std::optional<Timestamp> before;
            if (!purge_before.is_none()) before = from_datetime(purge_before, "purge_before");
            Timestamp as_of = 0;
            DeletedPage page = without_gil([&] {
              as_of = e.clock().now();
              return e.list_deleted(subscription_id, optional_text(resource_group), limit, optional_text(cursor),
                                    principal, before);
            });
            const py::object when = to_datetime(as_of);
            RepeatedStrs strs;
            py::object items = list_of(page.items, [&](const DeletedWorkspace& item) {
              return deleted_workspace_value(item, when, strs);
            });
            py::object next = page.next_cursor ? py_str(*page.next_cursor) : py::none();
            return py::make_tuple(std::move(items), std::move(next));
          },
          py::arg("subscription_id"), py::arg("resource_group") = py::none(),
          py::arg("limit") = py::none(), py::arg("cursor") = py::none(),
          py::arg("principal") = py::none(), py::arg("purge_before") = py::none())
      .def(
          "list_live",
          // (items, next_cursor); items as FIELDS["workspace"].
          [](BoundEngine& bound, const Text<"subscription_id">& subscription_id,
             const std::optional<Text<"resource_group">>& resource_group, std::optional<std::size_t> limit,
             const std::optional<Text<"cursor">>& cursor, P principal) {
            Engine& e = *bound.engine;
            WorkspacePage page = without_gil([&] {
              return e.list_live(subscription_id, optional_text(resource_group), limit, optional_text(cursor),
                                 principal);
            });
            py::object items = list_of(page.items, workspace_value);
            py::object next = page.next_cursor ? py_str(*page.next_cursor) : py::none();
            return py::make_tuple(std::move(items), std::move(next));
          },
          py::arg("subscription_id"), py::arg("resource_group") = py::none(),
          py::arg("limit") = py::none(), py::arg("cursor") = py::none(),
          py::arg("principal") = py::none())
      .def(
          "get_deleted",
          [](BoundEngine& bound, const Text<"subscription_id">& subscription_id, const Text<"resource_group">& resource_group,
             const Text<"name">& name, P principal) {
            Engine& e = *bound.engine;
            Timestamp as_of = 0;
            DeletedWorkspace item = without_gil([&] {
              as_of = e.clock().now();
              return e.get_deleted(subscription_id, resource_group, name, principal);
            });
            RepeatedStrs strs;
            return deleted_workspace_value(item, to_datetime(as_of), strs);
          },
          py::arg("subscription_id"), py::arg("resource_group"), py::arg("name"),
          py::arg("principal") = py::none())
      .def(
          "recover",
          [](BoundEngine& bound, const Text<"subscription_id">& subscription_id,
             const Text<"resource_group">& resource_group, const Text<"name">& name, P principal) {
            Engine& e = *bound.engine;
            RecoverResult result = without_gil(
                [&] { return e.recover(subscription_id, resource_group, name, principal); });
            return value(result);
          },
          py::arg("subscription_id"), py::arg("resource_group"),
          py::arg("name"), py::arg("principal") = py::none())
      .def(
          "purge",
          [](BoundEngine& bound, const Text<"subscription_id">& subscription_id, const Text<"resource_group">& resource_group,
             const Text<"name">& name, P principal) {
            Engine& e = *bound.engine;
            return value(without_gil(
                [&] { return e.purge(subscription_id, resource_group, name, principal); }));
          },
          py::arg("subscription_id"), py::arg("resource_group"), py::arg("name"),
          py::arg("principal") = py::none())
      .def(
          "purge_expired",
          [](BoundEngine& bound, P principal, bool dry_run) {
            Engine& e = *bound.engine;
            return value(without_gil([&] { return e.purge_expired(principal, dry_run); }));
          },
          py::arg("principal") = py::none(), py::arg("dry_run") = false)
      .def(
          "list_deletable",
          [](BoundEngine& bound, const Text<"subscription_id">& subscription_id) {
            Engine& e = *bound.engine;
            return records_of(without_gil([&] { return e.list_deletable(subscription_id); }));
          },
          py::arg("subscription_id"))
      .def(
          "purge_by_id",
          [](BoundEngine& bound, const Text<"workspace_id">& workspace_id, P principal, bool dry_run,
             const std::optional<std::vector<Text<"an expected ref">>>& expected_refs) {
            Engine& e = *bound.engine;
            PurgeByIdOptions options;
            options.dry_run = dry_run;
            if (expected_refs) {
              options.expected_refs.emplace();
              for (const auto& ref : *expected_refs) options.expected_refs->push_back(ref.value);
            }
            return value(without_gil([&] { return e.purge_by_id(workspace_id, principal, options); }));
          },
          py::arg("workspace_id"), py::arg("principal") = py::none(), py::arg("dry_run") = false,
          py::arg("expected_refs") = py::none())
      .def("cleanup_tasks",
           [](BoundEngine& bound) {
            Engine& e = *bound.engine;
             return records_of(without_gil([&] { return e.cleanup_tasks(); }));
           })
      .def(
          "complete_cleanup",
          [](BoundEngine& bound, std::int64_t task_id) {
            Engine& e = *bound.engine; without_gil([&] { e.complete_cleanup(task_id); }); },
          py::arg("task_id"))
      .def(
          "claim_cleanup",
          [](BoundEngine& bound, const Text<"worker">& worker, std::size_t limit, const py::handle& lease) {
            Engine& e = *bound.engine;
            const std::int64_t micros = from_timedelta(lease, "lease");
            return records_of(without_gil([&] { return e.claim_cleanup(worker, limit, micros); }));
          },
          py::arg("worker"), py::arg("limit"), py::arg("lease"))
      .def(
          "fail_cleanup",
          [](BoundEngine& bound, std::int64_t task_id, const Text<"error">& error, const py::handle& retry_after) {
            Engine& e = *bound.engine;
            const std::int64_t micros = from_timedelta(retry_after, "retry_after");
            without_gil([&] { e.fail_cleanup(task_id, error, micros); });
          },
          py::arg("task_id"), py::arg("error"), py::arg("retry_after"))
      .def(
          "place_hold",
          [](BoundEngine& bound, const Text<"workspace_id">& workspace_id, const Text<"reason">& reason, P principal) {
            Engine& e = *bound.engine;
            return value(without_gil([&] { return e.place_hold(workspace_id, reason, principal); }));
          },
          py::arg("workspace_id"), py::arg("reason"), py::arg("principal") = py::none())
      .def(
          "release_hold",
          [](BoundEngine& bound, const Text<"hold_id">& hold_id, P principal) {
            Engine& e = *bound.engine;
            without_gil([&] { e.release_hold(hold_id, principal); });
          },
          py::arg("hold_id"), py::arg("principal") = py::none())
      .def(
          "holds",
          [](BoundEngine& bound, const Text<"workspace_id">& workspace_id) {
            Engine& e = *bound.engine;
            return records_of(without_gil([&] { return e.holds(workspace_id); }));
          },
          py::arg("workspace_id"))
      .def(
          "add_lien",
          [](BoundEngine& bound, const Text<"workspace_id">& workspace_id, const Text<"origin">& origin,
             const Text<"reason">& reason, P principal) {
            Engine& e = *bound.engine;
            return value(without_gil([&] { return e.add_lien(workspace_id, origin, reason, principal); }));
          },
          py::arg("workspace_id"), py::arg("origin"), py::arg("reason"), py::arg("principal") = py::none())
      .def(
          "remove_lien",
          [](BoundEngine& bound, const Text<"lien_id">& lien_id, P principal) {
            Engine& e = *bound.engine;
            without_gil([&] { e.remove_lien(lien_id, principal); });
          },
          py::arg("lien_id"), py::arg("principal") = py::none())
      .def(
          "liens",
          [](BoundEngine& bound, const Text<"workspace_id">& workspace_id) {
            Engine& e = *bound.engine;
            return records_of(without_gil([&] { return e.liens(workspace_id); }));
          },
          py::arg("workspace_id"))
      .def(
          "enable_purge_protection",
          [](BoundEngine& bound, const Text<"workspace_id">& workspace_id, P principal) {
            Engine& e = *bound.engine;
            return workspace_value(without_gil([&] { return e.enable_purge_protection(workspace_id, principal); }));
          },
          py::arg("workspace_id"), py::arg("principal") = py::none())
      .def(
          "set_auto_delete",
          [](BoundEngine& bound, const Text<"workspace_id">& workspace_id, const py::handle& at,
             P principal) {
            Engine& e = *bound.engine;
            std::optional<Timestamp> when;
            if (!at.is_none()) when = from_datetime(at, "at");
            return workspace_value(without_gil([&] { return e.set_auto_delete(workspace_id, when, principal); }));
          },
          py::arg("workspace_id"), py::arg("at"), py::arg("principal") = py::none())
      .def(
          "audit_log",
          [](BoundEngine& bound, const std::optional<Text<"subscription_id">>& subscription_id,
             std::optional<std::int64_t> after_seq, std::optional<std::int64_t> limit) {
            Engine& e = *bound.engine;
            if (limit && *limit < 1) {
              throw Error(ErrorCode::invalid_argument,
                          "limit must be at least 1 (or None for everything), not " + std::to_string(*limit));
            }
            std::optional<std::size_t> rows;
            if (limit) rows = static_cast<std::size_t>(*limit);
            return records_of(
                without_gil([&] { return e.audit_log(optional_text(subscription_id), after_seq, rows); }));
          },
          py::arg("subscription_id") = py::none(), py::arg("after_seq") = py::none(),
          py::arg("limit") = py::none());
}

}  // namespace recyclebin::bindings

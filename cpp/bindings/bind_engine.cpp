// recyclebin::Engine and the values that cross its edge.
//
// GIL: every engine call converts its arguments to C++ values first, then runs with the
// GIL released (without_gil), touching no Python object, so Python threads run the engine
// in parallel and a close() waiting for calls in flight cannot deadlock with them. The
// one way back into Python is the facts provider, which takes the GIL itself.
//
// Answers: the engine's answers become the package's own objects, built here directly, so
// the facade hands them on as they are: the frozen result classes of recyclebin.results
// (DeleteResult, DeletedWorkspace, RecoverResult, CleanupTask, ...), as object.__new__ plus
// one store into each field's slot (no Python code runs, neither
// __init__ nor the frozen __setattr__), and the live workspaces as the facade's rb.Workspace
// objects, through the engine's identity map (WorkspaceMap). results.py and workspace.py
// register the classes at import (_register_types, _register_workspace_type), which checks
// that their fields and slots are the ones set here. An rb.Workspace keeps the engine's
// answer as a plain tuple (_WorkspaceSnapshot in _core.pyi).

#include <pybind11/stl.h>
#include <structmember.h>  // PyMemberDef, T_OBJECT_EX, PyMember_SetOne: stores into __slots__

#include <boost/describe/enumerators.hpp>
#include <boost/mp11/algorithm.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
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
/// allocate (and later free) the same string a hundred times.
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

/// The spelling of an enum value as an interned str, made once per value.
template <class E>
py::object enum_name(E value) {
  constexpr std::size_t N = boost::mp11::mp_size<boost::describe::describe_enumerators<E>>::value;
  static std::array<PyObject*, N> names{};  // leaked: they live as long as the interpreter
  const auto index = static_cast<std::size_t>(value);
  if (index >= N) return py_str(enum_to_string(value));
  if (names[index] == nullptr) {
    PyObject* name = PyUnicode_InternFromString(enum_to_string(value).c_str());
    if (name == nullptr) throw py::error_already_set();
    names[index] = name;
  }
  return py::reinterpret_borrow<py::object>(names[index]);
}

// --- the package's result classes -------------------------------------------------------------

enum class Record : std::size_t {
  cleanup_task,
  delete_result,
  deleted_workspace,
  recover_result,
  purge_report,
  deletable_workspace,
  audit_record,
  hold,
  lien,
  count
};

struct RecordSpec {
  const char* key;  // the _register_types keyword
  std::vector<const char*> fields;
};

const std::array<RecordSpec, static_cast<std::size_t>(Record::count)>& record_specs() {
  static const std::array<RecordSpec, static_cast<std::size_t>(Record::count)> specs{{
      {"cleanup_task",
       {"id", "kind", "ref", "workspace_id", "created_at", "attempts", "last_error", "leased_by",
        "leased_until"}},
      {"delete_result",
       {"permanent", "deleted_at", "purge_at", "retained", "destroyed", "preserved", "cleanup",
        "warnings", "dry_run"}},
      {"deleted_workspace",
       {"id", "name", "subscription_id", "resource_group", "deleted_at", "purge_at",
        "retention_days", "retained", "held", "as_of"}},
      {"recover_result", {"workspace", "restored", "reattached", "must_recreate"}},
      {"purge_report", {"purged", "cleanup", "dry_run", "auto_deleted", "auto_delete_refused"}},
      {"deletable_workspace", {"kind", "workspace_id", "since"}},
      {"audit_record",
       {"seq", "at", "action", "subscription_id", "resource_group", "name", "outcome",
        "workspace_id", "principal_id"}},
      {"hold", {"id", "workspace_id", "reason", "placed_by", "placed_at"}},
      {"lien", {"id", "workspace_id", "origin", "reason", "created_at"}},
  }};
  return specs;
}

/// A class whose instances the binding fills through their __slots__.
struct SlottedType {
  PyTypeObject* type = nullptr;     // a strong reference, leaked on purpose (as error classes)
  std::vector<PyMemberDef*> slots;  // owned by the class, in the order the builder stores
};

std::array<SlottedType, static_cast<std::size_t>(Record::count)> g_records{};  // spec's field order
SlottedType g_workspace;  // recyclebin.workspace.Workspace: _engine, _snapshot, _state
PyObject* g_empty_tuple = nullptr;

PyTypeObject* registered(PyTypeObject* type) {
  if (type == nullptr) {
    throw std::runtime_error(
        "recyclebin._core: the package's classes are not registered; import recyclebin");
  }
  return type;
}

/// Stores `value` into the __slots__ member `slot` of `instance` (as the slot's descriptor
/// would, without looking the descriptor up).
void store(PyObject* instance, PyMemberDef* slot, PyObject* value) {
  if (PyMember_SetOne(reinterpret_cast<char*>(instance), slot, value) < 0) {
    throw py::error_already_set();
  }
}

/// A new instance of the registered class of `which`, with `values` moved into its fields'
/// slots (in the spec's order). object.__new__ and one pointer per slot: no __init__, no
/// __post_init__, no frozen __setattr__ runs; the values come from the engine and are
/// already what the fields hold. The instance is new, so every slot is still empty.
template <std::size_t N>
py::object record(Record which, std::array<py::object, N>&& values) {
  const SlottedType& type = g_records[static_cast<std::size_t>(which)];
  registered(type.type);
  if (type.slots.size() != N) throw std::logic_error("recyclebin._core: record field count");
  py::object instance = steal(PyBaseObject_Type.tp_new(type.type, g_empty_tuple, nullptr));
  char* base = reinterpret_cast<char*>(instance.ptr());
  for (std::size_t i = 0; i < N; ++i) {
    *reinterpret_cast<PyObject**>(base + type.slots[i]->offset) = values[i].release().ptr();
  }
  return instance;
}

std::string qualname(py::handle cls) {
  return py::str(cls.attr("__qualname__")).cast<std::string>();
}

/// The member of the __slots__ entry `name` of `cls`, which must hold any object.
PyMemberDef* object_slot(py::handle cls, const char* name) {
  py::object descriptor = py::getattr(cls, name, py::none());
  if (!Py_IS_TYPE(descriptor.ptr(), &PyMemberDescr_Type)) {
    throw py::type_error("recyclebin._core: " + qualname(cls) + "." + name +
                         " must be a __slots__ entry");
  }
  PyMemberDef* member = reinterpret_cast<PyMemberDescrObject*>(descriptor.ptr())->d_member;
  if (member->type != T_OBJECT_EX || (member->flags & READONLY) != 0) {
    throw py::type_error("recyclebin._core: " + qualname(cls) + "." + name +
                         " must be a writable object slot");
  }
  return member;
}

/// The class `cls` with the members of its __slots__ entries `names`, in that order.
SlottedType slotted_type(py::handle cls, const std::vector<const char*>& names) {
  if (!PyType_Check(cls.ptr())) throw py::type_error("recyclebin._core: expected a class");
  SlottedType slotted;
  slotted.type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  for (const char* name : names) slotted.slots.push_back(object_slot(cls, name));
  return slotted;
}

/// Makes `registered_type` what `target` builds; keeps the class alive for good (a
/// re-registration leaks the old one: rare, harmless).
void install(SlottedType& target, SlottedType registered_type) {
  Py_INCREF(reinterpret_cast<PyObject*>(registered_type.type));
  target = std::move(registered_type);
  if (g_empty_tuple == nullptr) g_empty_tuple = steal(PyTuple_New(0)).release().ptr();
}

void register_types(const py::kwargs& classes) {
  const auto& specs = record_specs();
  auto given = [&](const char* key) -> py::object {
    if (!classes.contains(key)) {
      throw py::type_error(std::string("_register_types: missing ") + key);
    }
    py::object cls = classes[key];
    if (!PyType_Check(cls.ptr())) {
      throw py::type_error(std::string("_register_types: ") + key + " must be a class");
    }
    return cls;
  };
  std::array<SlottedType, static_cast<std::size_t>(Record::count)> records{};
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const RecordSpec& spec = specs[i];
    py::object cls = given(spec.key);
    // The dataclass's fields must be exactly the ones set here: a field added on one side
    // only would otherwise go missing (or stay unset) silently. Each is a slot
    // (dataclass(slots=True)), which the builders store into.
    std::set<std::string> declared;
    for (auto item : cls.attr("__dataclass_fields__").cast<py::dict>()) {
      declared.insert(item.first.cast<std::string>());
    }
    const std::set<std::string> built(spec.fields.begin(), spec.fields.end());
    if (declared != built) {
      throw py::type_error("_register_types: the fields of " + qualname(cls) +
                           " differ from what recyclebin._core builds for " + spec.key);
    }
    records[i] = slotted_type(cls, spec.fields);
  }
  for (std::size_t i = 0; i < records.size(); ++i) install(g_records[i], std::move(records[i]));
}

void register_workspace_type(const py::handle& cls) {
  SlottedType workspace = slotted_type(cls, {"_engine", "_snapshot", "_state"});
  if (workspace.type->tp_weaklistoffset == 0) {
    throw py::type_error("_register_workspace_type: " + qualname(cls) +
                         " must support weak references (the identity map holds them)");
  }
  install(g_workspace, std::move(workspace));
}

py::object cleanup_task_value(const CleanupTask& t) {
  return record<9>(Record::cleanup_task,
                   {integer(t.id), py_str(t.kind), py_str(t.ref), py_str(t.workspace_id),
                    to_datetime(t.created_at), integer(t.attempts),
                    t.last_error ? py_str(*t.last_error) : py::none(),
                    t.leased_by ? py_str(*t.leased_by) : py::none(), optional_datetime(t.leased_until)});
}

py::object delete_result_value(const DeleteResult& r) {
  return record<9>(Record::delete_result,
                   {boolean(r.permanent), to_datetime(r.deleted_at), optional_datetime(r.purge_at),
                    str_list(r.retained), str_list(r.destroyed), str_list(r.preserved),
                    list_of(r.cleanup, cleanup_task_value), str_list(r.warnings),
                    boolean(r.dry_run)});
}

py::object deleted_workspace_value(const DeletedWorkspace& d, const py::object& as_of,
                                   RepeatedStrs& strs) {
  return record<10>(Record::deleted_workspace,
                    {py_str(d.id), py_str(d.name), strs.same_as_last(0, d.subscription_id),
                     strs.same_as_last(1, d.resource_group), to_datetime(d.deleted_at),
                     to_datetime(d.purge_at), integer(d.retention_days), strs.kinds(d.retained),
                     boolean(d.held), as_of});
}

/// A tuple of strs.
template <std::size_t N>
py::object str_tuple(const std::array<const std::string*, N>& items) {
  py::object tuple = steal(PyTuple_New(static_cast<Py_ssize_t>(N)));
  for (std::size_t i = 0; i < N; ++i) {
    PyTuple_SET_ITEM(tuple.ptr(), static_cast<Py_ssize_t>(i), py_str(*items[i]).release().ptr());
  }
  return tuple;
}

py::object purge_report_value(const PurgeReport& r) {
  auto names = [](const PurgedWorkspace& p) {
    return str_tuple<3>({&p.subscription_id, &p.resource_group, &p.name});
  };
  return record<5>(Record::purge_report,
                   {list_of(r.purged, names), list_of(r.cleanup, cleanup_task_value), boolean(r.dry_run),
                    list_of(r.auto_deleted, names), list_of(r.auto_delete_refused, [](const RefusedAutoDelete& p) {
                      return str_tuple<4>({&p.subscription_id, &p.resource_group, &p.name, &p.code});
                    })});
}

py::object hold_value(const Hold& h) {
  return record<5>(Record::hold, {py_str(h.id), py_str(h.workspace_id), py_str(h.reason),
                                  h.placed_by ? py_str(*h.placed_by) : py::none(), to_datetime(h.placed_at)});
}

py::object lien_value(const Lien& l) {
  return record<5>(Record::lien, {py_str(l.id), py_str(l.workspace_id), py_str(l.origin), py_str(l.reason),
                                  to_datetime(l.created_at)});
}

py::object deletable_value(const DeletableWorkspace& d) {
  return record<3>(Record::deletable_workspace,
                   {enum_name(d.kind), py_str(d.workspace_id), to_datetime(d.since)});
}

py::object audit_record_value(const AuditRecord& r) {
  return record<9>(Record::audit_record,
                   {integer(r.seq), to_datetime(r.at), py_str(r.action),
                    py_str(r.subscription_id), py_str(r.resource_group), py_str(r.name),
                    py_str(r.outcome), py_str(r.workspace_id),
                    // None: the platform (stored as the empty string).
                    r.principal_id.empty() ? py::none() : py_str(r.principal_id)});
}

/// A tuple of `values`, untracked by the cyclic GC: it must hold only values that cannot
/// form a cycle (str, int, bool, datetime, None, or such tuples), as CPython's own
/// _PyTuple_MaybeUntrack would find at the first collection. Long-lived snapshots then cost
/// the collector nothing.
template <std::size_t N>
py::object atomic_tuple(std::array<py::object, N> values) {
  py::object tuple = steal(PyTuple_New(static_cast<Py_ssize_t>(N)));
  for (std::size_t i = 0; i < N; ++i) {
    PyTuple_SET_ITEM(tuple.ptr(), static_cast<Py_ssize_t>(i), values[i].release().ptr());
  }
  PyObject_GC_UnTrack(tuple.ptr());
  return tuple;
}

/// A live workspace as the facade keeps it: (id, subscription_id, resource_group, name,
/// retention_days, cmk_encrypted, state, created_at, components, purge_protection,
/// auto_delete_at), components a tuple of (kind, ref, standalone). Keep in step with
/// _WorkspaceSnapshot in _core.pyi and rb.Workspace.
py::object workspace_snapshot(const Workspace& w) {
  py::object components = steal(PyTuple_New(static_cast<Py_ssize_t>(w.components.size())));
  for (std::size_t i = 0; i < w.components.size(); ++i) {
    const Component& c = w.components[i];
    py::object component = atomic_tuple<3>({py_str(c.kind), py_str(c.ref), boolean(c.standalone)});
    PyTuple_SET_ITEM(components.ptr(), static_cast<Py_ssize_t>(i), component.release().ptr());
  }
  PyObject_GC_UnTrack(components.ptr());
  return atomic_tuple<11>({py_str(w.id), py_str(w.subscription_id), py_str(w.resource_group),
                           py_str(w.name), integer(w.retention_days), boolean(w.cmk_encrypted),
                           enum_name(w.state), to_datetime(w.created_at), std::move(components),
                           boolean(w.purge_protection), optional_datetime(w.auto_delete_at)});
}

// --- the facade's live workspaces -------------------------------------------------------------

/// What the weak reference `ref` refers to; None once that is gone.
py::object referent(PyObject* ref) {
#if PY_VERSION_HEX >= 0x030D0000
  PyObject* object = nullptr;
  if (PyWeakref_GetRef(ref, &object) < 0) throw py::error_already_set();
  return object == nullptr ? py::none() : steal(object);
#else
  PyObject* object = PyWeakref_GetObject(ref);  // borrowed
  if (object == nullptr) throw py::error_already_set();
  return py::reinterpret_borrow<py::object>(object);
#endif
}

/// The identity map of one rb.Engine (its _workspaces): the one rb.Workspace object per
/// workspace id, updated to every answer that carries the workspace, so ws.state and
/// ws.components stay current. Weak: the caller owns the objects. Dead references are not
/// removed one by one (a callback per object costs more than the lookup); the map is swept
/// when it has doubled since the last sweep, so it stays within twice the live objects.
///
/// Holds its engine weakly (the engine holds the map: no cycle through C++, where the
/// collector cannot see it). Needs the GIL and calls no Python code (str keys, weak
/// references without callbacks, snapshots of atomic values), so for Python threads a lookup
/// and its update are one step and there is no lock. The one way other code can run in
/// between is a garbage collection started by an allocation, which track allows for.
class WorkspaceMap {
 public:
  explicit WorkspaceMap(const py::handle& engine)
      : engine_(steal(PyWeakref_NewRef(engine.ptr(), nullptr))) {}

  /// The engine's one rb.Workspace for `workspace`, updated to it.
  py::object track(const Workspace& workspace) {
    py::object snapshot = workspace_snapshot(workspace);
    PyObject* id = PyTuple_GET_ITEM(snapshot.ptr(), 0);
    if (py::object known = alive(id)) return update(known, snapshot);
    const SlottedType& type = g_workspace;
    py::object engine = referent(engine_.ptr());
    if (engine.is_none()) throw std::runtime_error("recyclebin._core: the engine is gone");
    py::object created =
        steal(PyBaseObject_Type.tp_new(registered(type.type), g_empty_tuple, nullptr));
    store(created.ptr(), type.slots[kEngine], engine.ptr());
    update(created, snapshot);
    py::object created_ref = steal(PyWeakref_NewRef(created.ptr(), nullptr));
    // Those allocations may have run a garbage collection, whose finalizers may have let
    // another thread track this workspace: look again. From here to the insert, nothing runs.
    if (py::object known = alive(id)) return update(known, snapshot);
    if (PyDict_SetItem(entries_.ptr(), id, created_ref.ptr()) < 0) throw py::error_already_set();
    if (PyDict_GET_SIZE(entries_.ptr()) > sweep_at_) sweep();
    return created;
  }

  /// The objects of these workspaces (where alive) say state "deleted" from now on.
  void mark_deleted(const py::iterable& workspace_ids) {
    static PyObject* const deleted = PyUnicode_InternFromString("deleted");
    if (deleted == nullptr) throw py::error_already_set();
    for (py::handle id : workspace_ids) {
      if (py::object known = alive(id.ptr())) {
        store(known.ptr(), g_workspace.slots[kState], deleted);
      }
    }
  }

  std::size_t size() const { return static_cast<std::size_t>(PyDict_GET_SIZE(entries_.ptr())); }

 private:
  enum Slot : std::size_t { kEngine, kSnapshot, kState };  // g_workspace.slots, in this order
  static constexpr Py_ssize_t kSweepMin = 1024;             // not swept below this many entries

  /// The live object of workspace `id`, or a null object.
  py::object alive(PyObject* id) const {
    PyObject* ref = PyDict_GetItemWithError(entries_.ptr(), id);  // borrowed
    if (ref == nullptr) {
      if (PyErr_Occurred() != nullptr) throw py::error_already_set();
      return py::object();
    }
    py::object known = referent(ref);
    return known.is_none() ? py::object() : known;
  }

  /// `workspace` set to `snapshot`: its state is the snapshot's (also after "deleted").
  static py::object update(const py::object& workspace, const py::object& snapshot) {
    store(workspace.ptr(), g_workspace.slots[kSnapshot], snapshot.ptr());
    store(workspace.ptr(), g_workspace.slots[kState], PyTuple_GET_ITEM(snapshot.ptr(), 6));
    return workspace;
  }

  void sweep() {
    std::vector<py::object> dead;
    PyObject* id = nullptr;
    PyObject* ref = nullptr;
    Py_ssize_t position = 0;
    while (PyDict_Next(entries_.ptr(), &position, &id, &ref)) {
      if (referent(ref).is_none()) dead.push_back(py::reinterpret_borrow<py::object>(id));
    }
    for (const py::object& key : dead) {
      if (PyDict_DelItem(entries_.ptr(), key.ptr()) < 0) throw py::error_already_set();
    }
    sweep_at_ = std::max(kSweepMin, 2 * PyDict_GET_SIZE(entries_.ptr()));
  }

  py::object engine_;  // a weakref.ref to the rb.Engine whose map this is
  py::dict entries_;   // workspace id -> weakref.ref to its rb.Workspace
  Py_ssize_t sweep_at_ = kSweepMin;
};

py::object recover_result_value(const RecoverResult& r, WorkspaceMap& workspaces) {
  return record<4>(Record::recover_result,
                   {workspaces.track(r.workspace), str_list(r.restored), str_list(r.reattached),
                    str_list(r.must_recreate)});
}

// --- reading Python values --------------------------------------------------------------------

std::string utf8_attribute(py::handle object, PyObject* name, const char* what) {
  py::object value = steal(PyObject_GetAttr(object.ptr(), name));
  if (!PyUnicode_Check(value.ptr())) {
    const auto type = py::str(py::type::handle_of(value).attr("__qualname__")).cast<std::string>();
    throw py::type_error(std::string(what) + " must be a str, not " + type);
  }
  return text_from(value, what);
}

/// rb.Component values (anything with str kind and ref, bool standalone) as the engine's.
std::vector<Component> components_from(const py::iterable& items) {
  static PyObject* const kind = PyUnicode_InternFromString("kind");
  static PyObject* const ref = PyUnicode_InternFromString("ref");
  static PyObject* const standalone = PyUnicode_InternFromString("standalone");
  if (kind == nullptr || ref == nullptr || standalone == nullptr) throw py::error_already_set();
  std::vector<Component> components;
  for (py::handle item : items) {
    Component component;
    component.kind = utf8_attribute(item, kind, "Component.kind");
    component.ref = utf8_attribute(item, ref, "Component.ref");
    py::object flag = steal(PyObject_GetAttr(item.ptr(), standalone));
    if (!PyBool_Check(flag.ptr())) throw py::type_error("Component.standalone must be a bool");
    component.standalone = flag.ptr() == Py_True;
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

/// A Python callable as the engine's FactsProvider, called with the workspace's rb.Workspace
/// (from the engine's identity map, so it is the caller's own object). Called by the engine
/// on the thread that asked for the delete, with the GIL released; acquires it for the call.
/// A Python exception becomes a std::runtime_error carrying no Python object, which the
/// engine treats as "cannot verify".
class PythonFactsProvider {
 public:
  PythonFactsProvider(py::object function, py::object workspaces)
      : callback_(new Callback{std::move(function), std::move(workspaces)}, GilDeleter{}) {}

  Facts operator()(const Workspace& workspace) const {
    py::gil_scoped_acquire gil;
    try {
      auto& workspaces = callback_->workspaces.cast<WorkspaceMap&>();
      return to_facts(callback_->function(workspaces.track(workspace)));
    } catch (py::error_already_set& error) {
      throw std::runtime_error(std::string("facts provider raised ") + error.what());
    }
  }

 private:
  struct Callback {
    py::object function;
    py::object workspaces;  // the WorkspaceMap of the rb.Engine that set the provider
  };

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

  std::shared_ptr<Callback> callback_;
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

  m.def("_register_types", &register_types,
        "Registers the package's result classes (recyclebin.results), which engine answers "
        "are built as. Called once, by recyclebin.results.");
  m.def("_register_workspace_type", &register_workspace_type, py::arg("cls"),
        "Registers rb.Workspace, which WorkspaceMap makes the live workspaces of engine answers "
        "as. Called once, by recyclebin.workspace.");

  py::class_<WorkspaceMap>(m, "WorkspaceMap",
                           "The identity map of one rb.Engine: its one rb.Workspace per "
                           "workspace id, held weakly. The calls that answer with a live "
                           "workspace take it and answer with its object, updated.")
      .def(py::init<const py::handle&>(), py::arg("engine"))
      .def("__len__", &WorkspaceMap::size)
      .def("mark_deleted", &WorkspaceMap::mark_deleted, py::arg("workspace_ids"),
           "Makes the objects of these workspaces (those alive) say state 'deleted'.");
}

}  // namespace

void bind_engine(py::module_& m) {
  bind_values(m);

  using P = const MaybePrincipal&;
  py::class_<Engine>(m, "Engine",
                     "The only door to the recycle bin. Thread-safe; calls release the GIL.")
      .def_static(
          "open",
          [](const Text<"location">& location, const Policy& policy,
             const std::shared_ptr<ManualClock>& clock) {
            std::shared_ptr<const Clock> engine_clock = clock;
            Policy engine_policy = policy;
            return without_gil(
                [&] { return Engine::open(location.value, engine_policy, engine_clock); });
          },
          py::arg("location"), py::arg("policy"), py::arg("clock") = py::none())
      .def("close", [](Engine& e) { without_gil([&] { e.close(); }); })
      .def_property_readonly("closed", [](const Engine& e) { return without_gil([&] { return e.closed(); }); })
      .def_property_readonly("policy", [](const Engine& e) { return e.policy(); })
      .def("now", [](const Engine& e) { return to_datetime(e.clock().now()); })
      .def(
          "set_facts_provider",
          [](Engine& e, const py::object& function, const py::object& workspaces) {
            FactsProvider provider;
            if (!function.is_none()) {
              if (!PyCallable_Check(function.ptr())) {
                throw py::type_error("the facts provider must be callable or None");
              }
              if (!py::isinstance<WorkspaceMap>(workspaces)) {
                throw py::type_error("set_facts_provider needs the engine's WorkspaceMap");
              }
              provider = PythonFactsProvider(function, workspaces);
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
          py::arg("provider"), py::arg("workspaces"))
      .def(
          "create",
          [](Engine& e, WorkspaceMap& workspaces, Text<"subscription_id"> subscription_id,
             Text<"resource_group"> resource_group, Text<"name"> name,
             std::optional<int> retention_days, bool cmk_encrypted,
             const py::iterable& components, MaybePrincipal principal, std::optional<bool> purge_protection,
             const Text<"if_deleted">& if_deleted, const py::handle& auto_delete_at) {
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
            return workspaces.track(without_gil([&] { return e.create(request, principal); }));
          },
          py::arg("workspaces"), py::arg("subscription_id"), py::arg("resource_group"),
          py::arg("name"), py::arg("retention_days") = py::none(), py::arg("cmk_encrypted") = false,
          py::arg("components") = py::tuple(), py::arg("principal") = py::none(),
          py::arg("purge_protection") = py::none(), py::arg("if_deleted") = "fail",
          py::arg("auto_delete_at") = py::none())
      .def(
          "get",
          [](Engine& e, WorkspaceMap& workspaces, const Text<"subscription_id">& subscription_id,
             const Text<"resource_group">& resource_group, const Text<"name">& name, P principal) {
            return workspaces.track(
                without_gil([&] { return e.get(subscription_id, resource_group, name, principal); }));
          },
          py::arg("workspaces"), py::arg("subscription_id"), py::arg("resource_group"),
          py::arg("name"), py::arg("principal") = py::none())
      .def(
          "get_by_id",
          [](Engine& e, WorkspaceMap& workspaces, const Text<"workspace_id">& workspace_id, P principal) {
            return workspaces.track(without_gil([&] { return e.get_by_id(workspace_id, principal); }));
          },
          py::arg("workspaces"), py::arg("workspace_id"), py::arg("principal") = py::none())
      .def(
          "stop",
          [](Engine& e, WorkspaceMap& workspaces, const Text<"workspace_id">& workspace_id, P principal) {
            return workspaces.track(without_gil([&] { return e.stop(workspace_id, principal); }));
          },
          py::arg("workspaces"), py::arg("workspace_id"), py::arg("principal") = py::none())
      .def(
          "start",
          [](Engine& e, WorkspaceMap& workspaces, const Text<"workspace_id">& workspace_id, P principal) {
            return workspaces.track(without_gil([&] { return e.start(workspace_id, principal); }));
          },
          py::arg("workspaces"), py::arg("workspace_id"), py::arg("principal") = py::none())
      .def(
          "grant",
          [](Engine& e, const Text<"workspace_id">& workspace_id, const Text<"member_id">& member_id,
             const Text<"role">& role, P principal) {
            without_gil([&] { e.grant(workspace_id, member_id, role, principal); });
          },
          py::arg("workspace_id"), py::arg("member_id"), py::arg("role"),
          py::arg("principal") = py::none())
      .def(
          "revoke",
          [](Engine& e, const Text<"workspace_id">& workspace_id, const Text<"member_id">& member_id, P principal) {
            without_gil([&] { e.revoke(workspace_id, member_id, principal); });
          },
          py::arg("workspace_id"), py::arg("member_id"), py::arg("principal") = py::none())
      .def(
          "remove",
          [](Engine& e, const Text<"workspace_id">& workspace_id, bool delete_dependent_resources,
             bool permanently_delete, const std::optional<Text<"confirm_name">>& confirm_name,
             P principal, bool dry_run) {
            const DeleteOptions options = delete_options(
                delete_dependent_resources, permanently_delete, optional_text(confirm_name), dry_run);
            return delete_result_value(
                without_gil([&] { return e.remove(workspace_id, options, principal); }));
          },
          py::arg("workspace_id"), py::arg("delete_dependent_resources") = false,
          py::arg("permanently_delete") = false, py::arg("confirm_name") = py::none(),
          py::arg("principal") = py::none(), py::arg("dry_run") = false)
      .def(
          "remove_many",
          [](Engine& e, const std::vector<Text<"a workspace id">>& workspace_ids,
             bool delete_dependent_resources, bool permanently_delete,
             const std::optional<Text<"confirm_name">>& confirm_name, P principal, bool dry_run) {
            const DeleteOptions options = delete_options(
                delete_dependent_resources, permanently_delete, optional_text(confirm_name), dry_run);
            std::vector<std::string> ids;
            ids.reserve(workspace_ids.size());
            for (const auto& id : workspace_ids) ids.push_back(id.value);
            return list_of(
                without_gil([&] { return e.remove_many(ids, options, principal); }),
                delete_result_value);
          },
          py::arg("workspace_ids"), py::arg("delete_dependent_resources") = false,
          py::arg("permanently_delete") = false, py::arg("confirm_name") = py::none(),
          py::arg("principal") = py::none(), py::arg("dry_run") = false)
      .def(
          "list_deleted",
          // (items, next_cursor); each item's as_of is the engine's time just before the read.
          [](Engine& e, const Text<"subscription_id">& subscription_id,
             const std::optional<Text<"resource_group">>& resource_group,
             std::optional<std::size_t> limit, const std::optional<Text<"cursor">>& cursor,
             P principal, const py::handle& purge_before) {
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
          // (items, next_cursor); items are the engine's rb.Workspace objects.
          [](Engine& e, WorkspaceMap& workspaces, const Text<"subscription_id">& subscription_id,
             const std::optional<Text<"resource_group">>& resource_group, std::optional<std::size_t> limit,
             const std::optional<Text<"cursor">>& cursor, P principal) {
            WorkspacePage page = without_gil([&] {
              return e.list_live(subscription_id, optional_text(resource_group), limit, optional_text(cursor),
                                 principal);
            });
            py::object items =
                list_of(page.items, [&](const Workspace& w) { return workspaces.track(w); });
            py::object next = page.next_cursor ? py_str(*page.next_cursor) : py::none();
            return py::make_tuple(std::move(items), std::move(next));
          },
          py::arg("workspaces"), py::arg("subscription_id"), py::arg("resource_group") = py::none(),
          py::arg("limit") = py::none(), py::arg("cursor") = py::none(),
          py::arg("principal") = py::none())
      .def(
          "get_deleted",
          [](Engine& e, const Text<"subscription_id">& subscription_id, const Text<"resource_group">& resource_group,
             const Text<"name">& name, P principal) {
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
          [](Engine& e, WorkspaceMap& workspaces, const Text<"subscription_id">& subscription_id,
             const Text<"resource_group">& resource_group, const Text<"name">& name, P principal) {
            RecoverResult result = without_gil(
                [&] { return e.recover(subscription_id, resource_group, name, principal); });
            return recover_result_value(result, workspaces);
          },
          py::arg("workspaces"), py::arg("subscription_id"), py::arg("resource_group"),
          py::arg("name"), py::arg("principal") = py::none())
      .def(
          "purge",
          [](Engine& e, const Text<"subscription_id">& subscription_id, const Text<"resource_group">& resource_group,
             const Text<"name">& name, P principal) {
            return delete_result_value(without_gil(
                [&] { return e.purge(subscription_id, resource_group, name, principal); }));
          },
          py::arg("subscription_id"), py::arg("resource_group"), py::arg("name"),
          py::arg("principal") = py::none())
      .def(
          "purge_expired",
          [](Engine& e, P principal, bool dry_run) {
            return purge_report_value(without_gil([&] { return e.purge_expired(principal, dry_run); }));
          },
          py::arg("principal") = py::none(), py::arg("dry_run") = false)
      .def(
          "list_deletable",
          [](Engine& e, const Text<"subscription_id">& subscription_id) {
            return list_of(without_gil([&] { return e.list_deletable(subscription_id); }),
                           deletable_value);
          },
          py::arg("subscription_id"))
      .def(
          "purge_by_id",
          [](Engine& e, const Text<"workspace_id">& workspace_id, P principal, bool dry_run,
             const std::optional<std::vector<Text<"an expected ref">>>& expected_refs) {
            PurgeByIdOptions options;
            options.dry_run = dry_run;
            if (expected_refs) {
              options.expected_refs.emplace();
              for (const auto& ref : *expected_refs) options.expected_refs->push_back(ref.value);
            }
            return delete_result_value(
                without_gil([&] { return e.purge_by_id(workspace_id, principal, options); }));
          },
          py::arg("workspace_id"), py::arg("principal") = py::none(), py::arg("dry_run") = false,
          py::arg("expected_refs") = py::none())
      .def("cleanup_tasks",
           [](Engine& e) {
             return list_of(without_gil([&] { return e.cleanup_tasks(); }), cleanup_task_value);
           })
      .def(
          "complete_cleanup",
          [](Engine& e, std::int64_t task_id) { without_gil([&] { e.complete_cleanup(task_id); }); },
          py::arg("task_id"))
      .def(
          "claim_cleanup",
          [](Engine& e, const Text<"worker">& worker, std::size_t limit, const py::handle& lease) {
            const std::int64_t micros = from_timedelta(lease, "lease");
            return list_of(without_gil([&] { return e.claim_cleanup(worker, limit, micros); }),
                           cleanup_task_value);
          },
          py::arg("worker"), py::arg("limit"), py::arg("lease"))
      .def(
          "fail_cleanup",
          [](Engine& e, std::int64_t task_id, const Text<"error">& error, const py::handle& retry_after) {
            const std::int64_t micros = from_timedelta(retry_after, "retry_after");
            without_gil([&] { e.fail_cleanup(task_id, error, micros); });
          },
          py::arg("task_id"), py::arg("error"), py::arg("retry_after"))
      .def(
          "place_hold",
          [](Engine& e, const Text<"workspace_id">& workspace_id, const Text<"reason">& reason, P principal) {
            return hold_value(without_gil([&] { return e.place_hold(workspace_id, reason, principal); }));
          },
          py::arg("workspace_id"), py::arg("reason"), py::arg("principal") = py::none())
      .def(
          "release_hold",
          [](Engine& e, const Text<"hold_id">& hold_id, P principal) {
            without_gil([&] { e.release_hold(hold_id, principal); });
          },
          py::arg("hold_id"), py::arg("principal") = py::none())
      .def(
          "holds",
          [](Engine& e, const Text<"workspace_id">& workspace_id) {
            return list_of(without_gil([&] { return e.holds(workspace_id); }), hold_value);
          },
          py::arg("workspace_id"))
      .def(
          "add_lien",
          [](Engine& e, const Text<"workspace_id">& workspace_id, const Text<"origin">& origin,
             const Text<"reason">& reason, P principal) {
            return lien_value(without_gil([&] { return e.add_lien(workspace_id, origin, reason, principal); }));
          },
          py::arg("workspace_id"), py::arg("origin"), py::arg("reason"), py::arg("principal") = py::none())
      .def(
          "remove_lien",
          [](Engine& e, const Text<"lien_id">& lien_id, P principal) {
            without_gil([&] { e.remove_lien(lien_id, principal); });
          },
          py::arg("lien_id"), py::arg("principal") = py::none())
      .def(
          "liens",
          [](Engine& e, const Text<"workspace_id">& workspace_id) {
            return list_of(without_gil([&] { return e.liens(workspace_id); }), lien_value);
          },
          py::arg("workspace_id"))
      .def(
          "enable_purge_protection",
          [](Engine& e, WorkspaceMap& workspaces, const Text<"workspace_id">& workspace_id, P principal) {
            return workspaces.track(without_gil([&] { return e.enable_purge_protection(workspace_id, principal); }));
          },
          py::arg("workspaces"), py::arg("workspace_id"), py::arg("principal") = py::none())
      .def(
          "set_auto_delete",
          [](Engine& e, WorkspaceMap& workspaces, const Text<"workspace_id">& workspace_id, const py::handle& at,
             P principal) {
            std::optional<Timestamp> when;
            if (!at.is_none()) when = from_datetime(at, "at");
            return workspaces.track(without_gil([&] { return e.set_auto_delete(workspace_id, when, principal); }));
          },
          py::arg("workspaces"), py::arg("workspace_id"), py::arg("at"), py::arg("principal") = py::none())
      .def(
          "audit_log",
          [](Engine& e, const std::optional<Text<"subscription_id">>& subscription_id,
             std::optional<std::int64_t> after_seq, std::optional<std::int64_t> limit) {
            if (limit && *limit < 1) {
              throw Error(ErrorCode::invalid_argument,
                          "limit must be at least 1 (or None for everything), not " + std::to_string(*limit));
            }
            std::optional<std::size_t> rows;
            if (limit) rows = static_cast<std::size_t>(*limit);
            return list_of(without_gil([&] { return e.audit_log(optional_text(subscription_id), after_seq, rows); }),
                           audit_record_value);
          },
          py::arg("subscription_id") = py::none(), py::arg("after_seq") = py::none(),
          py::arg("limit") = py::none());
}

}  // namespace recyclebin::bindings

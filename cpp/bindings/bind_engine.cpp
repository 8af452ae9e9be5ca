// recyclebin::Engine and the values that cross its edge.
//
// GIL: every engine call converts its arguments to C++ values first, then runs with the
// GIL released (without_gil), touching no Python object, so Python threads run the engine
// in parallel and a close() waiting for calls in flight cannot deadlock with them. The
// one way back into Python is the facts provider, which takes the GIL itself.

#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "recyclebin/engine.hpp"

namespace recyclebin::bindings {
namespace {

using OptionalString = std::optional<std::string>;

// Frees a Python object from any thread: the engine may drop its copy of the facts
// provider on a thread that does not hold the GIL.
struct GilDeleter {
  void operator()(py::object* object) const {
    if (!Py_IsInitialized()) return;  // interpreter gone: leaking beats crashing
    py::gil_scoped_acquire gil;
    delete object;
  }
};

/// A Python callable as the engine's FactsProvider. Called by the engine on the thread that
/// asked for the delete, with the GIL released; acquires it for the call. A Python exception
/// becomes a std::runtime_error carrying no Python object, which the engine treats as
/// "cannot verify".
class PythonFactsProvider {
 public:
  explicit PythonFactsProvider(py::object function)
      : function_(new py::object(std::move(function)), GilDeleter{}) {}

  Facts operator()(const Workspace& workspace) const {
    py::gil_scoped_acquire gil;
    try {
      return to_facts((*function_)(workspace));
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

py::object optional_datetime(const std::optional<Timestamp>& t) {
  return t ? to_datetime(*t) : py::none();
}

DeleteOptions delete_options(bool delete_dependent_resources, bool permanently_delete,
                             OptionalString confirm_name) {
  DeleteOptions options;
  options.delete_dependent_resources = delete_dependent_resources;
  options.permanently_delete = permanently_delete;
  options.confirm_name = std::move(confirm_name);
  return options;
}

void bind_values(py::module_& m) {
  py::class_<Component>(m, "Component")
      .def(py::init([](std::string kind, std::string ref, bool standalone) {
             return Component{std::move(kind), std::move(ref), standalone};
           }),
           py::arg("kind"), py::arg("ref"), py::arg("standalone") = false)
      .def_readonly("kind", &Component::kind)
      .def_readonly("ref", &Component::ref)
      .def_readonly("standalone", &Component::standalone);

  py::class_<Principal>(m, "Principal")
      .def(py::init([](std::string id, std::vector<std::string> roles) {
             return Principal{std::move(id), std::move(roles)};
           }),
           py::arg("id"), py::arg("roles") = std::vector<std::string>{})
      .def_readonly("id", &Principal::id)
      .def_readonly("roles", &Principal::roles);

  py::class_<Workspace>(m, "Workspace")
      .def_readonly("id", &Workspace::id)
      .def_readonly("subscription_id", &Workspace::subscription_id)
      .def_readonly("resource_group", &Workspace::resource_group)
      .def_readonly("name", &Workspace::name)
      .def_readonly("retention_days", &Workspace::retention_days)
      .def_readonly("cmk_encrypted", &Workspace::cmk_encrypted)
      .def_property_readonly("state", [](const Workspace& w) { return enum_to_string(w.state); })
      .def_property_readonly("created_at", [](const Workspace& w) { return to_datetime(w.created_at); })
      .def_readonly("components", &Workspace::components);

  py::class_<CleanupTask>(m, "CleanupTask")
      .def_readonly("id", &CleanupTask::id)
      .def_readonly("kind", &CleanupTask::kind)
      .def_readonly("ref", &CleanupTask::ref)
      .def_readonly("workspace_id", &CleanupTask::workspace_id)
      .def_property_readonly("created_at", [](const CleanupTask& t) { return to_datetime(t.created_at); });

  py::class_<DeleteResult>(m, "DeleteResult")
      .def_readonly("permanent", &DeleteResult::permanent)
      .def_property_readonly("deleted_at", [](const DeleteResult& r) { return to_datetime(r.deleted_at); })
      .def_property_readonly("purge_at", [](const DeleteResult& r) { return optional_datetime(r.purge_at); })
      .def_readonly("retained", &DeleteResult::retained)
      .def_readonly("destroyed", &DeleteResult::destroyed)
      .def_readonly("preserved", &DeleteResult::preserved)
      .def_readonly("cleanup", &DeleteResult::cleanup)
      .def_readonly("warnings", &DeleteResult::warnings);

  py::class_<DeletedWorkspace>(m, "DeletedWorkspace")
      .def_readonly("id", &DeletedWorkspace::id)
      .def_readonly("name", &DeletedWorkspace::name)
      .def_readonly("subscription_id", &DeletedWorkspace::subscription_id)
      .def_readonly("resource_group", &DeletedWorkspace::resource_group)
      .def_property_readonly("deleted_at", [](const DeletedWorkspace& d) { return to_datetime(d.deleted_at); })
      .def_property_readonly("purge_at", [](const DeletedWorkspace& d) { return to_datetime(d.purge_at); })
      .def_readonly("retention_days", &DeletedWorkspace::retention_days)
      .def_readonly("retained", &DeletedWorkspace::retained);

  py::class_<DeletedPage>(m, "DeletedPage")
      .def_readonly("items", &DeletedPage::items)
      .def_readonly("next_cursor", &DeletedPage::next_cursor);

  py::class_<RecoverResult>(m, "RecoverResult")
      .def_readonly("workspace", &RecoverResult::workspace)
      .def_readonly("restored", &RecoverResult::restored)
      .def_readonly("reattached", &RecoverResult::reattached)
      .def_readonly("must_recreate", &RecoverResult::must_recreate);

  py::class_<PurgedWorkspace>(m, "PurgedWorkspace")
      .def_readonly("subscription_id", &PurgedWorkspace::subscription_id)
      .def_readonly("resource_group", &PurgedWorkspace::resource_group)
      .def_readonly("name", &PurgedWorkspace::name);

  py::class_<PurgeReport>(m, "PurgeReport")
      .def_readonly("purged", &PurgeReport::purged)
      .def_readonly("cleanup", &PurgeReport::cleanup);

  py::class_<DeletableWorkspace>(m, "DeletableWorkspace")
      .def_property_readonly("kind", [](const DeletableWorkspace& d) { return enum_to_string(d.kind); })
      .def_readonly("workspace_id", &DeletableWorkspace::workspace_id)
      .def_property_readonly("since", [](const DeletableWorkspace& d) { return to_datetime(d.since); });

  py::class_<AuditRecord>(m, "AuditRecord")
      .def_readonly("seq", &AuditRecord::seq)
      .def_property_readonly("at", [](const AuditRecord& r) { return to_datetime(r.at); })
      .def_readonly("action", &AuditRecord::action)
      .def_readonly("subscription_id", &AuditRecord::subscription_id)
      .def_readonly("resource_group", &AuditRecord::resource_group)
      .def_readonly("name", &AuditRecord::name)
      .def_readonly("outcome", &AuditRecord::outcome)
      .def_readonly("workspace_id", &AuditRecord::workspace_id)
      .def_readonly("principal_id", &AuditRecord::principal_id);
}

}  // namespace

void bind_engine(py::module_& m) {
  bind_values(m);

  using P = const MaybePrincipal&;
  py::class_<Engine>(m, "Engine",
                     "The only door to the recycle bin. Thread-safe; calls release the GIL.")
      .def_static(
          "open",
          [](const std::string& location, const Policy& policy,
             const std::shared_ptr<ManualClock>& clock) {
            std::shared_ptr<const Clock> engine_clock = clock;
            Policy engine_policy = policy;
            return without_gil([&] { return Engine::open(location, engine_policy, engine_clock); });
          },
          py::arg("location"), py::arg("policy"), py::arg("clock") = py::none())
      .def("close", [](Engine& e) { without_gil([&] { e.close(); }); })
      .def_property_readonly("closed", [](const Engine& e) { return without_gil([&] { return e.closed(); }); })
      .def_property_readonly("policy", [](const Engine& e) { return e.policy(); })
      .def("now", [](const Engine& e) { return to_datetime(e.clock().now()); })
      .def(
          "set_facts_provider",
          [](Engine& e, const py::object& function) {
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
          [](Engine& e, std::string subscription_id, std::string resource_group, std::string name,
             std::optional<int> retention_days, bool cmk_encrypted,
             std::vector<Component> components, MaybePrincipal principal) {
            CreateRequest request{std::move(subscription_id), std::move(resource_group),
                                  std::move(name), retention_days, cmk_encrypted,
                                  std::move(components)};
            return without_gil([&] { return e.create(request, principal); });
          },
          py::arg("subscription_id"), py::arg("resource_group"), py::arg("name"),
          py::arg("retention_days") = py::none(), py::arg("cmk_encrypted") = false,
          py::arg("components") = std::vector<Component>{}, py::arg("principal") = py::none())
      .def(
          "get",
          [](Engine& e, const std::string& subscription_id, const std::string& resource_group,
             const std::string& name, P principal) {
            return without_gil([&] { return e.get(subscription_id, resource_group, name, principal); });
          },
          py::arg("subscription_id"), py::arg("resource_group"), py::arg("name"),
          py::arg("principal") = py::none())
      .def(
          "get_by_id",
          [](Engine& e, const std::string& workspace_id, P principal) {
            return without_gil([&] { return e.get_by_id(workspace_id, principal); });
          },
          py::arg("workspace_id"), py::arg("principal") = py::none())
      .def(
          "stop",
          [](Engine& e, const std::string& workspace_id, P principal) {
            return without_gil([&] { return e.stop(workspace_id, principal); });
          },
          py::arg("workspace_id"), py::arg("principal") = py::none())
      .def(
          "start",
          [](Engine& e, const std::string& workspace_id, P principal) {
            return without_gil([&] { return e.start(workspace_id, principal); });
          },
          py::arg("workspace_id"), py::arg("principal") = py::none())
      .def(
          "grant",
          [](Engine& e, const std::string& workspace_id, const std::string& member_id,
             const std::string& role, P principal) {
            without_gil([&] { e.grant(workspace_id, member_id, role, principal); });
          },
          py::arg("workspace_id"), py::arg("member_id"), py::arg("role"),
          py::arg("principal") = py::none())
      .def(
          "revoke",
          [](Engine& e, const std::string& workspace_id, const std::string& member_id, P principal) {
            without_gil([&] { e.revoke(workspace_id, member_id, principal); });
          },
          py::arg("workspace_id"), py::arg("member_id"), py::arg("principal") = py::none())
      .def(
          "remove",
          [](Engine& e, const std::string& workspace_id, bool delete_dependent_resources,
             bool permanently_delete, OptionalString confirm_name, P principal) {
            const DeleteOptions options =
                delete_options(delete_dependent_resources, permanently_delete, std::move(confirm_name));
            return without_gil([&] { return e.remove(workspace_id, options, principal); });
          },
          py::arg("workspace_id"), py::arg("delete_dependent_resources") = false,
          py::arg("permanently_delete") = false, py::arg("confirm_name") = py::none(),
          py::arg("principal") = py::none())
      .def(
          "remove_many",
          [](Engine& e, const std::vector<std::string>& workspace_ids, bool delete_dependent_resources,
             bool permanently_delete, OptionalString confirm_name, P principal) {
            const DeleteOptions options =
                delete_options(delete_dependent_resources, permanently_delete, std::move(confirm_name));
            return without_gil([&] { return e.remove_many(workspace_ids, options, principal); });
          },
          py::arg("workspace_ids"), py::arg("delete_dependent_resources") = false,
          py::arg("permanently_delete") = false, py::arg("confirm_name") = py::none(),
          py::arg("principal") = py::none())
      .def(
          "list_deleted",
          [](Engine& e, const std::string& subscription_id, const OptionalString& resource_group,
             std::optional<std::size_t> limit, const OptionalString& cursor, P principal) {
            return without_gil([&] {
              return e.list_deleted(subscription_id, resource_group, limit, cursor, principal);
            });
          },
          py::arg("subscription_id"), py::arg("resource_group") = py::none(),
          py::arg("limit") = py::none(), py::arg("cursor") = py::none(),
          py::arg("principal") = py::none())
      .def(
          "get_deleted",
          [](Engine& e, const std::string& subscription_id, const std::string& resource_group,
             const std::string& name, P principal) {
            return without_gil(
                [&] { return e.get_deleted(subscription_id, resource_group, name, principal); });
          },
          py::arg("subscription_id"), py::arg("resource_group"), py::arg("name"),
          py::arg("principal") = py::none())
      .def(
          "recover",
          [](Engine& e, const std::string& subscription_id, const std::string& resource_group,
             const std::string& name, P principal) {
            return without_gil(
                [&] { return e.recover(subscription_id, resource_group, name, principal); });
          },
          py::arg("subscription_id"), py::arg("resource_group"), py::arg("name"),
          py::arg("principal") = py::none())
      .def(
          "purge",
          [](Engine& e, const std::string& subscription_id, const std::string& resource_group,
             const std::string& name, P principal) {
            return without_gil([&] { return e.purge(subscription_id, resource_group, name, principal); });
          },
          py::arg("subscription_id"), py::arg("resource_group"), py::arg("name"),
          py::arg("principal") = py::none())
      .def(
          "purge_expired",
          [](Engine& e, P principal) { return without_gil([&] { return e.purge_expired(principal); }); },
          py::arg("principal") = py::none())
      .def(
          "list_deletable",
          [](Engine& e, const std::string& subscription_id) {
            return without_gil([&] { return e.list_deletable(subscription_id); });
          },
          py::arg("subscription_id"))
      .def(
          "purge_by_id",
          [](Engine& e, const std::string& workspace_id, P principal) {
            return without_gil([&] { return e.purge_by_id(workspace_id, principal); });
          },
          py::arg("workspace_id"), py::arg("principal") = py::none())
      .def("cleanup_tasks", [](Engine& e) { return without_gil([&] { return e.cleanup_tasks(); }); })
      .def(
          "complete_cleanup",
          [](Engine& e, std::int64_t task_id) { without_gil([&] { e.complete_cleanup(task_id); }); },
          py::arg("task_id"))
      .def(
          "audit_log",
          [](Engine& e, const OptionalString& subscription_id) {
            return without_gil([&] { return e.audit_log(subscription_id); });
          },
          py::arg("subscription_id") = py::none());
}

}  // namespace recyclebin::bindings

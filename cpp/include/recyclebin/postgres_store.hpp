#pragma once
// The shared PostgreSQL store: many engines (threads, processes, machines) on one database.
// Includes no <libpq-fe.h>.

#include <memory>
#include <string>

#include "recyclebin/store.hpp"

namespace recyclebin {

/// Opens a PostgreSQL store. `url` is a libpq connection URI ("postgresql://..." or
/// "postgres://..."); what it leaves out comes from the PG* environment variables. The
/// tables live in the first schema of the connection's search_path (default public),
/// created if missing and migrated forward (versions recorded in its schema_migrations
/// table). Failures (unreachable, bad credentials, no such database, no rights on the
/// schema, malformed URI) throw Error(storage_error) naming host, port and database, never
/// the password.
std::unique_ptr<Store> open_postgres_store(const std::string& url);

/// The schema version open_postgres_store migrates to.
int postgres_schema_version();

}  // namespace recyclebin

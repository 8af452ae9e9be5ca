// recyclebin._core: the C++ core for the Python package. This file only wires the parts
// together; the order matters where one part's types appear in another's signatures.

#include "bindings.hpp"

#include <string>

PYBIND11_MODULE(_core, m) {
  namespace rb = recyclebin::bindings;
  m.doc() = "The recyclebin C++ core. Import the recyclebin package, not this module.";
  if (m.attr("__name__").cast<std::string>() != RECYCLEBIN_CORE_MODULE) {
    throw pybind11::import_error("this module must be imported as " RECYCLEBIN_CORE_MODULE);
  }
  m.attr("__version__") = RECYCLEBIN_VERSION;
  rb::bind_errors(m);
  rb::bind_time(m);
  rb::bind_policy(m);
  rb::bind_engine(m);
}

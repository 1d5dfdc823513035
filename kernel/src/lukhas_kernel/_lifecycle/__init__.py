"""Plugin lifecycle: discovery, a per-plugin state machine, dependency order,
health, request-time dispatch and the Kernel coordinating them."""

"""The plugin API's types: the context, routes, states, the kernel view (a
Protocol), pagination and field types."""

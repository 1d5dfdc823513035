"""The aiohttp host: the app and its middlewares, handler wrapping,
authentication, OpenAPI, the kernel's routes and the serving loop."""

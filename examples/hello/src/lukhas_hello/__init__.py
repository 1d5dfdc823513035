"""lukhas-hello: a minimal Lukhas plugin (the hooks are in `lukhas_hello.plugin`)."""

"""The application: settings, the embedded Redis, the CLI, composition of the parts."""

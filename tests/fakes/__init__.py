"""Local fakes of paid remote APIs (the only fakes the tests use), speaking their real wire formats."""

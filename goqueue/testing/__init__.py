"""Helpers for tests that need a real broker: users' own tests and Go-Queue's."""

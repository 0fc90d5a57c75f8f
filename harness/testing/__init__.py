"""Test helpers for plugin authors (filled in by the conformance kit)."""

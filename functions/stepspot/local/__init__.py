"""The embedded engine behind local mode and the end-to-end tests."""

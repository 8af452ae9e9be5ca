"""Scenario tests: one per source system, each walking its document through the public API."""

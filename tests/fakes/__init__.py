"""Fake CRM servers that speak the documented JSON of the real APIs, run on 127.0.0.1 inside the tests."""

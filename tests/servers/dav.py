"""Radicale and Xandikos test server fixtures (session-scoped, loopback)."""

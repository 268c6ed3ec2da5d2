"""PostgreSQL test server fixture (session-scoped, throwaway cluster on loopback)."""

"""`chatgate backup` and `chatgate restore`: a consistent, checksummed, versioned archive of the
database, portable between SQLite and PostgreSQL (the format: docs/backup.md)."""

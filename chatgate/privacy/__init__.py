"""What a person may ask of their own data (API.md, "Your data"): a copy of it, its erasure,
and how long it is kept."""

"""adapter room."""

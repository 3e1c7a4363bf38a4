"""offline room."""

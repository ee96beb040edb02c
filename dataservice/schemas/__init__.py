"""marshmallow schemas: one per direction (what a client sends, what it gets back)."""

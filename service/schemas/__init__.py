"""pydantic v2 request and response models, one module per resource (DESIGN §4 shapes)."""

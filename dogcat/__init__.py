"""dogcat: name the dog breed in a shelter's photos, and keep a durable record of them."""

__version__ = "0.1.0"

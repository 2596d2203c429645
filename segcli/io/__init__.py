"""Reading and writing bytes: images, videos, and the files helpers (atomic writes, names)."""

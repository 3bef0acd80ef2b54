"""The inference server: model bundles, limits, prediction, the HTTP app, ``skillmaker serve``."""

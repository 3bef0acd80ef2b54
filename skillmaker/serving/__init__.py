"""The inference server: model bundles, limits, prediction, the HTTP app and ``skillmaker serve``."""
